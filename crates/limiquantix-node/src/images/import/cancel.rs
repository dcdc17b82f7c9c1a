//! Stopping an import from outside it. A cancel and the import's commit (the moment before the
//! image is linked into place) race on one value, so exactly one of them wins: either the import
//! stops and keeps nothing, or the cancel is refused because the image is being published.

use tokio::sync::watch;

/// Where an import stands with respect to cancellation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Transferring or checking; a cancel still wins.
    Running,
    /// Cancelled: the import stops and discards its files.
    Cancelled,
    /// Committed: the image is being linked into place; too late to cancel.
    Committed,
}

/// What [`ImportCancel::cancel`] achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The import stops now and keeps nothing.
    Cancelled,
    /// It had been cancelled before.
    AlreadyCancelled,
    /// The import had already committed: its image is (being) published.
    TooLate,
}

/// A handle that stops an import started with [`super::ImageLibrary::import_cancellable`].
/// Cheap to clone; every clone controls the same import.
#[derive(Clone, Debug)]
pub struct ImportCancel {
    stage: watch::Sender<Stage>,
}

impl Default for ImportCancel {
    fn default() -> Self {
        Self::new()
    }
}

impl ImportCancel {
    /// A handle for an import that has not been cancelled.
    pub fn new() -> Self {
        ImportCancel {
            stage: watch::Sender::new(Stage::Running),
        }
    }

    /// Asks the import to stop. It stops at its next await point and removes its partial files,
    /// unless it has already committed ([`CancelOutcome::TooLate`]).
    pub fn cancel(&self) -> CancelOutcome {
        let mut outcome = CancelOutcome::TooLate;
        self.stage.send_if_modified(|stage| match stage {
            Stage::Running => {
                *stage = Stage::Cancelled;
                outcome = CancelOutcome::Cancelled;
                true
            }
            Stage::Cancelled => {
                outcome = CancelOutcome::AlreadyCancelled;
                false
            }
            Stage::Committed => false,
        });
        outcome
    }

    /// Whether a cancel won.
    pub fn is_cancelled(&self) -> bool {
        *self.stage.borrow() == Stage::Cancelled
    }

    /// Claims the right to publish; false when a cancel came first.
    pub(super) fn commit(&self) -> bool {
        self.stage.send_if_modified(|stage| {
            if *stage == Stage::Running {
                *stage = Stage::Committed;
                true
            } else {
                false
            }
        });
        *self.stage.borrow() == Stage::Committed
    }

    /// Resolves once a cancel has won.
    pub(super) async fn cancelled(&self) {
        let mut rx = self.stage.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = rx.wait_for(|s| *s == Stage::Cancelled).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_and_a_commit_exclude_each_other() {
        let c = ImportCancel::new();
        assert_eq!(c.cancel(), CancelOutcome::Cancelled);
        assert_eq!(c.cancel(), CancelOutcome::AlreadyCancelled);
        assert!(!c.commit());
        assert!(c.is_cancelled());

        let c = ImportCancel::new();
        assert!(c.commit());
        assert!(c.commit(), "committing twice is harmless");
        assert_eq!(c.clone().cancel(), CancelOutcome::TooLate);
        assert!(!c.is_cancelled());
    }

    #[tokio::test]
    async fn waiters_wake_on_cancel() {
        let c = ImportCancel::new();
        let waiter = tokio::spawn({
            let c = c.clone();
            async move { c.cancelled().await }
        });
        tokio::task::yield_now().await;
        c.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the waiter wakes")
            .unwrap();
    }
}
