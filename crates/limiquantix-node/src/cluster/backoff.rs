//! Retry pacing and quiet failure logs: exponential backoff with jitter (1 s doubling to 60 s)
//! while the control plane cannot be reached, and a log that warns at the first failure of a
//! streak and then at most once a minute.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// First retry delay.
pub const MIN_DELAY: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// Least time between two warnings of one failure streak.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

/// Exponential backoff: the n-th delay is drawn from [d/2, d] with d = min(1 s × 2ⁿ, 60 s), so
/// nodes that lost the control plane together do not come back in step.
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = MIN_DELAY
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(MAX_DELAY);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let span = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(random() % (span + 1))
    }
}

/// A random number (from the system's generator, through a v4 UUID).
fn random() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

/// The log of one recurring call: a failure streak is logged at `warn` when it starts and then
/// at most once per [`WARN_EVERY`] (the rest at `debug`), its end at `info`.
#[derive(Debug)]
pub struct FailureLog {
    what: &'static str,
    streak: u32,
    last_warn: Option<Instant>,
}

impl FailureLog {
    /// A log for `what` ("control plane", ...).
    pub fn new(what: &'static str) -> Self {
        FailureLog {
            what,
            streak: 0,
            last_warn: None,
        }
    }

    /// Records a failure; returns whether it was logged at `warn`.
    pub fn failed(&mut self, error: &dyn Display) -> bool {
        self.streak += 1;
        let due = self.last_warn.is_none_or(|t| t.elapsed() >= WARN_EVERY);
        if self.streak == 1 || due {
            self.last_warn = Some(Instant::now());
            tracing::warn!(
                failures = self.streak,
                "{}: {error} (retrying; logged at most once a minute)",
                self.what
            );
            return true;
        }
        tracing::debug!(failures = self.streak, "{}: {error}", self.what);
        false
    }

    /// Records a success; a streak that ends is logged once.
    pub fn succeeded(&mut self) {
        if self.streak > 0 {
            tracing::info!(
                failures = self.streak,
                "{}: working again after {} failed attempts",
                self.what,
                self.streak
            );
        }
        self.streak = 0;
        self.last_warn = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_a_minute() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        for (n, d) in delays.iter().enumerate() {
            let ceiling = MIN_DELAY.saturating_mul(1 << n).min(MAX_DELAY);
            assert!(*d >= ceiling / 2 && *d <= ceiling, "delay {n} = {d:?}");
        }
        assert!(delays[11] >= Duration::from_secs(30));
    }

    #[test]
    fn a_failure_streak_warns_once_then_at_most_once_a_minute() {
        let mut log = FailureLog::new("test");
        assert!(log.failed(&"down"));
        assert!(!log.failed(&"down"));
        assert!(!log.failed(&"down"));
        log.succeeded();
        assert!(log.failed(&"down again"), "a new streak warns");
        log.last_warn = Some(Instant::now() - WARN_EVERY);
        assert!(log.failed(&"still down"));
    }
}
