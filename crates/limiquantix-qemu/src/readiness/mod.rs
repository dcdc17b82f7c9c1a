//! Guest readiness, the QEMU side: reading `serial.log` as it grows and asking the guest agent
//! for cloud-init's verdict, feeding the pure tracker of [`limiquantix_vm::readiness`].
//!
//! - `error`: [`ReadinessError`], what the helpers that do I/O fail with.
//! - [`tail`]: [`SerialLogTail`] and [`follow_serial_log`].
//! - [`watch`]: [`watch_boot`], which drives the console, the agent and the no-agent fallback
//!   for one VM for as long as its QEMU runs, and [`query_cloud_init_status`].

mod error;
mod tail;
mod watch;

pub use error::ReadinessError;
pub use limiquantix_vm::readiness::{BootPhase, CloudInitStatus, ReadinessTracker};
pub use tail::{SerialLogTail, follow_serial_log};
pub use watch::{WatchOptions, query_cloud_init_status, watch_boot};

#[cfg(test)]
mod tests;
