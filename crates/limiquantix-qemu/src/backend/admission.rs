//! Back-pressure and limits on how much the backend takes on: caps on concurrent QEMU starts
//! and disk creations ([`Gate`]: a request waiting for its turn gives up when the caller's
//! deadline passes, before it has changed anything), and the number of VMs the daemon's
//! open-file limit can serve ([`vm_capacity`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::types::QemuError;
use limiquantix_vm::model::VmId;

/// Descriptors the daemon holds for one running VM, counted: the QEMU process's pidfd, the QMP
/// connection, the serial log followed for readiness, the guest-agent connection once used
/// (measured: 3 to 4 per running VM, `cargo bench -p limiquantix-node --bench scale`).
pub const FDS_PER_VM_MEASURED: u64 = 4;

/// Descriptors budgeted per defined VM: the counted ones with room for a console client, a
/// guest-agent file transfer and a `qemu-img` child's pipes at the same time.
pub const FDS_PER_VM: u64 = 8;

/// Descriptors kept for everything else: listeners, API clients, logs, downloads, pools.
pub const FD_RESERVE: u64 = 256;

/// How many VMs an open-file limit of `nofile` serves ([`FD_RESERVE`] kept aside, then
/// [`FDS_PER_VM`] each).
pub fn vm_capacity(nofile: u64) -> usize {
    usize::try_from(nofile.saturating_sub(FD_RESERVE) / FDS_PER_VM).unwrap_or(usize::MAX)
}

/// The process's soft `RLIMIT_NOFILE` (`None` when it cannot be read or is unlimited).
pub fn current_nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0 && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// A cap on how many of one kind of work run at once; the rest wait their turn in order.
#[derive(Debug)]
pub(crate) struct Gate {
    /// What is capped, for errors (`QEMU starts`, `disk creations`).
    what: &'static str,
    /// The cap.
    cap: usize,
    permits: Arc<Semaphore>,
}

impl Gate {
    /// A gate letting `cap` (at least 1) through at once.
    pub(crate) fn new(what: &'static str, cap: usize) -> Self {
        let cap = cap.max(1);
        Self {
            what,
            cap,
            permits: Arc::new(Semaphore::new(cap)),
        }
    }

    /// Waits for a turn, until `deadline` when there is one ([`QemuError::Queued`] then); the
    /// turn lasts as long as the permit lives.
    pub(crate) async fn enter(
        &self,
        vm_id: &VmId,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<OwnedSemaphorePermit, QemuError> {
        let started = tokio::time::Instant::now();
        let acquire = self.permits.clone().acquire_owned();
        let permit = match deadline {
            Some(d) => {
                tokio::time::timeout_at(d, acquire)
                    .await
                    .map_err(|_| QemuError::Queued {
                        vm_id: vm_id.clone(),
                        what: self.what,
                        cap: self.cap,
                        waited: started.elapsed(),
                    })?
            }
            None => acquire.await,
        };
        let waited = started.elapsed();
        if waited > Duration::from_millis(1) {
            tracing::debug!(vm_id = %vm_id, what = self.what, ?waited, "waited for a turn");
        }
        permit.map_err(|_| QemuError::Task(format!("the {} gate closed", self.what)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_keeps_the_reserve_and_budgets_each_vm() {
        assert_eq!(vm_capacity(1024), 96);
        assert_eq!(vm_capacity(FD_RESERVE + 100 * FDS_PER_VM), 100);
        assert_eq!(vm_capacity(10), 0);
        assert!(current_nofile_limit().is_some_and(|n| n > 0));
    }

    #[tokio::test]
    async fn a_vm_past_the_open_file_limit_is_refused_and_nothing_is_made() {
        use crate::{BackendConfig, DefineExtras, QemuBackend};
        use limiquantix_vm::model::VmDefinition;
        let dir = tempfile::tempdir().unwrap();
        let mut config = BackendConfig::new(dir.path().join("state"), dir.path().join("run"));
        config.accel = limiquantix_vm::accel::Accel::Tcg;
        config.nofile_limit = Some(FD_RESERVE + 2 * FDS_PER_VM);
        let backend = QemuBackend::open(config).await.unwrap();
        let define = |name: &str| {
            let def = VmDefinition::new(VmId::generate(), name, 64);
            let valid = def.into_valid().unwrap();
            let b = backend.clone();
            async move { b.define(valid, DefineExtras::default()).await }
        };
        define("a").await.unwrap();
        define("b").await.unwrap();
        let err = define("c").await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, QemuError::TooManyVms { capacity: 2, .. }),
            "{text}"
        );
        assert!(
            text.contains("at most 2 VMs") && text.contains("RLIMIT_NOFILE 272"),
            "{text}"
        );
        let category = limiquantix_vm::BackendError::from(err);
        assert!(matches!(
            category,
            limiquantix_vm::BackendError::Precondition(_)
        ));
        assert_eq!(backend.list().len(), 2);
        let dirs = std::fs::read_dir(dir.path().join("state/vms"))
            .unwrap()
            .count();
        assert_eq!(dirs, 2, "the refused VM left files");
    }

    #[tokio::test]
    async fn a_queued_request_gives_up_at_its_deadline_and_the_queue_moves_on() {
        let gate = Gate::new("QEMU starts", 1);
        let id = VmId::generate();
        let held = gate.enter(&id, None).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
        let t = std::time::Instant::now();
        let err = gate.enter(&id, Some(deadline)).await.unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let text = err.to_string();
        assert!(
            matches!(err, QemuError::Queued { cap: 1, .. }) && text.contains("QEMU starts"),
            "{text}"
        );
        drop(held);
        let far = tokio::time::Instant::now() + Duration::from_secs(5);
        assert!(gate.enter(&id, Some(far)).await.is_ok());
    }
}
