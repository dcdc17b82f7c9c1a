//! The HTTP face's listeners for `axum::serve`: TCP connections filtered by the allow-list at
//! accept time ([`crate::accept::AllowListed`], the plaintext gRPC listener's filter), then, for
//! HTTPS, a TLS handshake in its own task (at most [`HANDSHAKE_TIMEOUT`]) so a slow client holds
//! up nobody else. Each listener serves at most [`MAX_CONNECTIONS`] connections at once, each
//! ended after [`super::guard::IDLE_TIMEOUT`] without traffic.

use super::guard::{Guarded, MAX_CONNECTIONS};
use crate::accept::AllowListed;
use crate::config::Cidr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;

/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Filtered = AllowListed<TcpListenerStream>;

async fn next_allowed(incoming: &mut Filtered) -> (TcpStream, SocketAddr) {
    loop {
        match incoming.next().await {
            Some(Ok(s)) => match s.peer_addr() {
                Ok(peer) => return (s, peer),
                Err(_) => continue,
            },
            Some(Err(e)) => {
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            None => std::future::pending::<()>().await,
        }
    }
}

/// Plain HTTP from the allow-list.
pub struct PlainListener {
    incoming: Filtered,
    local: SocketAddr,
    slots: Arc<Semaphore>,
}

impl PlainListener {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr, allow: Arc<[Cidr]>, name: String) -> std::io::Result<Self> {
        let l = TcpListener::bind(addr).await?;
        let local = l.local_addr()?;
        Ok(PlainListener {
            incoming: AllowListed::new(TcpListenerStream::new(l), allow, name),
            local,
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        })
    }
}

impl axum::serve::Listener for PlainListener {
    type Io = Guarded<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let slot = match self.slots.clone().acquire_owned().await {
            Ok(s) => s,
            Err(_) => std::future::pending().await,
        };
        let (stream, peer) = next_allowed(&mut self.incoming).await;
        (Guarded::new(stream, slot), peer)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// HTTPS from the allow-list.
pub struct TlsListener {
    ready: mpsc::Receiver<(Guarded<TlsStream<TcpStream>>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Binds `addr`; handshakes run in tasks that end with the listener.
    pub async fn bind(
        addr: SocketAddr,
        allow: Arc<[Cidr]>,
        name: String,
        tls: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let l = TcpListener::bind(addr).await?;
        let local = l.local_addr()?;
        let mut incoming = AllowListed::new(TcpListenerStream::new(l), allow, name);
        let acceptor = TlsAcceptor::from(tls);
        let (tx, ready) = mpsc::channel(64);
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = tokio::select! {
                    c = next_allowed(&mut incoming) => c,
                    () = tx.closed() => return,
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((Guarded::new(tls, slot), peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = Guarded<TlsStream<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
