//! The caller's deadline, carried to whatever the request waits for.
//!
//! A front end (the daemon's gRPC layer reads `grpc-timeout`) runs a request inside
//! [`with_deadline`]; a backend that queues work (a cap on concurrent starts or disk creations)
//! reads [`current`] and gives up waiting when the deadline passes, before it has changed
//! anything. Work already admitted is not cut short by it.

use std::future::Future;
use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `f` with `deadline` as the current deadline (`None`: none).
pub async fn with_deadline<F: Future>(deadline: Option<Instant>, f: F) -> F::Output {
    match deadline {
        Some(d) => DEADLINE.scope(d, f).await,
        None => f.await,
    }
}

/// The deadline of the request being served, if it has one.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_deadline_is_seen_inside_and_only_inside() {
        assert_eq!(current(), None);
        let d = Instant::now() + Duration::from_secs(1);
        let seen = with_deadline(Some(d), async { current() }).await;
        assert_eq!(seen, Some(d));
        assert_eq!(with_deadline(None, async { current() }).await, None);
        assert_eq!(current(), None);
    }
}
