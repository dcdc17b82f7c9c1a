//! The caller's deadline (`grpc-timeout`) carried into the request's work: a tower layer runs
//! each call inside [`limiquantix_vm::deadline::with_deadline`], so a backend queue (the caps on
//! concurrent starts and disk creations) gives up waiting in time, with a precise error, before
//! the transport abandons the call.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The longest margin taken off a deadline: the queue gives up this much before the transport
/// would drop the call, so the caller gets the queue's own error.
const MARGIN: Duration = Duration::from_millis(20);

/// The `grpc-timeout` header's value as a duration (`None` when absent or malformed): at most
/// 8 digits and a unit, `H`, `M`, `S`, `m`, `u` or `n`.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// When the queue gives up for a call of `timeout`: a tenth of it (at most [`MARGIN`]) early.
fn queue_deadline(timeout: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + timeout.saturating_sub((timeout / 10).min(MARGIN))
}

/// The layer that gives every call its deadline.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlineLayer;

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService { inner }
    }
}

/// The service [`DeadlineLayer`] wraps around the routes.
#[derive(Debug, Clone)]
pub struct DeadlineService<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for DeadlineService<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let deadline = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map(queue_deadline);
        let fut = self.inner.call(req);
        Box::pin(limiquantix_vm::deadline::with_deadline(deadline, fut))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_by_their_unit_and_bad_ones_are_ignored() {
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("150m"), Some(Duration::from_millis(150)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        for bad in ["", "S", "10", "1x", "123456789S", "-1S", "1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn the_queue_gives_up_a_little_before_the_transport() {
        let now = tokio::time::Instant::now();
        let d = queue_deadline(Duration::from_secs(10));
        let early = now + Duration::from_secs(10) - d;
        assert!(early <= MARGIN + Duration::from_millis(5), "{early:?}");
        let d = queue_deadline(Duration::from_millis(50));
        assert!(d - now <= Duration::from_millis(46), "{:?}", d - now);
    }
}
