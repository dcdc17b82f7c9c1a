//! Guest readiness, the pure part: following a boot from "hypervisor started" to "cloud-init
//! done" from what the guest prints and what its agent answers.
//!
//! The mechanism needs nothing from the guest beyond what a cloud image already does, so a
//! user's user-data is never touched:
//!
//! 1. **Serial console.** Each console line is fed to a [`ReadinessTracker`], which moves through
//!    the [`BootPhase`]s: firmware banner or boot loader → `Linux version` → cloud-init's
//!    `running 'init-local'`, `'init'`, `'modules:config'`, `'modules:final'` → `Cloud-init v. X
//!    finished`. Fatal console messages (`No bootable device`, iPXE's `Nothing to boot`, a kernel
//!    panic, the initramfs giving up on the root device) end the boot as [`BootPhase::Failed`].
//! 2. **Guest agent verdict.** Once the console says cloud-init finished, the backend asks the
//!    guest agent for `cloud-init status --format json` and hands the answer
//!    ([`CloudInitStatus`]) to [`ReadinessTracker::apply_cloud_init_status`]: `done` →
//!    [`BootPhase::Ready`], `error` → [`BootPhase::Failed`] carrying cloud-init's own messages.
//! 3. **No agent.** [`ReadinessTracker::conclude_from_serial`] decides from the console alone
//!    (ready unless cloud-init printed failures).
//!
//! Everything here is pure (no I/O, no clock), so it is tested on captured serial logs; reading
//! the log and asking the agent are the backend's business (the QEMU backend's `readiness`
//! module).
//!
//! - [`phase`]: [`BootPhase`], [`CloudInitStage`], [`BootFailure`].
//! - [`console`]: cleaning and classifying one console line.
//! - [`verdict`]: cloud-init's status JSON.
//! - [`tracker`]: the state machine.

pub mod console;
pub mod phase;
pub mod tracker;
pub mod verdict;

pub use console::{ConsoleEvent, classify_console_line, clean_console_line};
pub use phase::{BootFailure, BootPhase, CloudInitStage};
pub use tracker::ReadinessTracker;
pub use verdict::{CloudInitState, CloudInitStatus, StatusJsonError};

#[cfg(test)]
mod tests;
