//! The accept-time filter of the plaintext listeners: a stream adapter over a listener's
//! accepted connections that closes every connection from outside the allow-list before a byte
//! of HTTP/2 is read or written, and counts them.
//!
//! Refusals are logged at most once per [`LOG_EVERY`] per source address (a line carrying the
//! source's and the listener's totals), so a scanner cannot flood the log; when the listener
//! closes, its total is logged once more.

use crate::config::Cidr;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_stream::Stream;

/// How often refusals from one source are logged at most.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Sources remembered for rate-limiting; past it, quiet sources are forgotten, and refusals from
/// new sources are logged together under `::` until there is room again.
const MAX_SOURCES: usize = 1024;

/// The accepted connections of `inner` whose peer is in the allow-list; the others are closed.
pub struct AllowListed<S> {
    inner: S,
    allow: Arc<[Cidr]>,
    refusals: Refusals,
}

impl<S> AllowListed<S> {
    /// Filters the connections `inner` accepts on `listener` (its name, for the logs) by `allow`.
    pub fn new(inner: S, allow: Arc<[Cidr]>, listener: String) -> Self {
        AllowListed {
            inner,
            allow,
            refusals: Refusals {
                listener,
                total: 0,
                sources: HashMap::new(),
            },
        }
    }

    /// Connections refused so far.
    pub fn refused(&self) -> u64 {
        self.refusals.total
    }
}

impl<S> Stream for AllowListed<S>
where
    S: Stream<Item = io::Result<TcpStream>> + Unpin,
{
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let stream = match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                Some(Ok(stream)) => stream,
                other => return Poll::Ready(other),
            };
            match stream.peer_addr() {
                Ok(peer) if this.allow.iter().any(|c| c.contains(peer.ip())) => {
                    return Poll::Ready(Some(Ok(stream)));
                }
                // Dropping the stream closes the connection before anything is read from it.
                Ok(peer) => this.refusals.record(peer.ip().to_canonical()),
                Err(e) => tracing::debug!(error = %e, "accepted connection already gone"),
            }
        }
    }
}

/// The refusals of one listener.
struct Refusals {
    listener: String,
    total: u64,
    sources: HashMap<IpAddr, Source>,
}

/// The refusals of one source address.
struct Source {
    total: u64,
    last_logged: Option<Instant>,
}

impl Refusals {
    fn record(&mut self, peer: IpAddr) {
        self.total += 1;
        let now = Instant::now();
        if !self.sources.contains_key(&peer) && self.sources.len() >= MAX_SOURCES {
            self.sources
                .retain(|_, s| s.last_logged.is_some_and(|t| now - t < LOG_EVERY));
        }
        let key = if self.sources.contains_key(&peer) || self.sources.len() < MAX_SOURCES {
            peer
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        };
        let source = self.sources.entry(key).or_insert(Source {
            total: 0,
            last_logged: None,
        });
        source.total += 1;
        tracing::trace!(listener = %self.listener, %peer, "refused a connection");
        if source.last_logged.is_none_or(|t| now - t >= LOG_EVERY) {
            source.last_logged = Some(now);
            tracing::warn!(
                listener = %self.listener,
                %peer,
                refused_from_peer = source.total,
                refused_total = self.total,
                "refused a connection from outside the allow-list \
                 (logged at most once a minute per address)"
            );
        }
    }
}

impl Drop for Refusals {
    fn drop(&mut self) {
        if self.total > 0 {
            tracing::info!(
                listener = %self.listener,
                refused_total = self.total,
                "plaintext listener closed; connections refused from outside the allow-list"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;
    use tokio_stream::StreamExt as _;
    use tokio_stream::wrappers::TcpListenerStream;

    async fn connect_from(source: &str, to: std::net::SocketAddr) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(to).await.unwrap()
    }

    #[tokio::test]
    async fn only_allowed_peers_come_through_and_the_rest_are_closed_and_counted() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let allow: Arc<[Cidr]> = vec!["127.0.0.2".parse().unwrap()].into();
        let mut incoming = AllowListed::new(TcpListenerStream::new(listener), allow, "test".into());

        // Two refused connections from 127.0.0.1, then one allowed from 127.0.0.2.
        let mut refused = Vec::new();
        for _ in 0..2 {
            refused.push(connect_from("127.0.0.1", addr).await);
        }
        let allowed = connect_from("127.0.0.2", addr).await;
        let accepted = incoming.next().await.unwrap().unwrap();
        assert_eq!(
            accepted.peer_addr().unwrap(),
            allowed.local_addr().unwrap(),
            "only the allowed connection comes through"
        );
        assert_eq!(incoming.refused(), 2);
        for mut r in refused {
            let mut buf = [0u8; 1];
            let n = r.read(&mut buf).await.unwrap_or(0);
            assert_eq!(n, 0, "a refused connection is closed without a byte");
        }
        assert_eq!(incoming.refusals.sources.len(), 1);
        assert_eq!(
            incoming.refusals.sources[&"127.0.0.1".parse::<IpAddr>().unwrap()].total,
            2
        );
    }

    #[test]
    fn many_sources_stay_bounded() {
        let mut r = Refusals {
            listener: "test".into(),
            total: 0,
            sources: HashMap::new(),
        };
        for i in 0..(MAX_SOURCES as u32 + 100) {
            r.record(IpAddr::V4((0x0a00_0000 + i).into()));
        }
        assert_eq!(r.total, MAX_SOURCES as u64 + 100);
        assert!(r.sources.len() <= MAX_SOURCES + 1, "{}", r.sources.len());
        assert_eq!(r.sources[&IpAddr::V6(Ipv6Addr::UNSPECIFIED)].total, 100);
    }
}
