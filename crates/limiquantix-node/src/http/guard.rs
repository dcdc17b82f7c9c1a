//! A connection of the HTTP face: it holds one of its listener's [`MAX_CONNECTIONS`] slots for
//! its life, and fails with `TimedOut` after [`IDLE_TIMEOUT`] without a byte in either
//! direction (longer than any request may take, so only a stuck or abandoned connection ends).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

/// Connections one listener serves at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 128;
/// Longest a connection may stay without traffic.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(super::REQUEST_TIMEOUT.as_secs() + 10);

/// A stream with a connection slot and an idle deadline.
pub struct Guarded<S> {
    inner: S,
    idle: Pin<Box<Sleep>>,
    limit: Duration,
    _slot: OwnedSemaphorePermit,
}

impl<S> Guarded<S> {
    /// `inner`, holding `slot`.
    pub fn new(inner: S, slot: OwnedSemaphorePermit) -> Self {
        Self::with_idle_limit(inner, slot, IDLE_TIMEOUT)
    }

    /// `inner`, holding `slot`, ended after `limit` without traffic.
    pub fn with_idle_limit(inner: S, slot: OwnedSemaphorePermit, limit: Duration) -> Self {
        Guarded {
            inner,
            idle: Box::pin(tokio::time::sleep(limit)),
            limit,
            _slot: slot,
        }
    }

    /// Progress: the deadline moves on.
    fn touched(&mut self) {
        self.idle.as_mut().reset(Instant::now() + self.limit);
    }

    /// `Pending` unless the deadline passed.
    fn check_idle<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.idle.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection was idle too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.touched();
                Poll::Ready(r)
            }
            Poll::Pending => this.check_idle(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.touched();
                Poll::Ready(r)
            }
            Poll::Pending => this.check_idle(cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt as _;

    #[tokio::test]
    async fn an_idle_connection_times_out_and_frees_its_slot() {
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        let (a, _b) = tokio::io::duplex(64);
        let slot = slots.clone().acquire_owned().await.unwrap();
        let mut g = Guarded::with_idle_limit(a, slot, Duration::from_millis(50));
        assert_eq!(slots.available_permits(), 0);
        let mut buf = [0u8; 1];
        let e = g.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(g);
        assert_eq!(slots.available_permits(), 1);
    }
}
