//! The QEMU backend of limiquantix-node: [`QemuBackend`] implements
//! [`limiquantix_vm::VmBackend`] with one detached QEMU process per VM.
//!
//! - [`argv`]: the typed QEMU command-line builder, with the boot-safety rules.
//! - [`firmware`]: BIOS/UEFI selection, OVMF discovery and per-VM variables.
//! - [`paths`]: the per-VM file layout under the state and run directories (private to this
//!   backend: the daemon asks the trait, never for a path).
//! - [`qmp`]: the async QMP client; [`qga`]: the async guest-agent client.
//! - [`readiness`]: following a boot from `serial.log` and the guest agent, feeding the pure
//!   tracker of [`limiquantix_vm::readiness`].
//! - [`persist`]: atomic `vm.json` and runtime-state files.
//! - [`process`]: QEMU processes: detached spawn, exit watching, re-adoption, liveness.
//! - [`probe`]: the KVM probe guest run at start, and the accelerator decision it feeds.
//! - [`logs`]: the ends of log files, read backwards.
//! - [`metrics`]: the collector of every running VM's CPU, memory, disk and network figures.
//! - [`backend`]: the backend itself: define, start, stop, events, re-adoption after a restart,
//!   and the trait implementation.
//!
//! The VM model, states and readiness classifier are `limiquantix-vm`'s; disk images are
//! `limiquantix-storage`'s.

pub mod argv;
pub mod backend;
pub mod fault;
pub mod firmware;
pub mod logs;
pub mod metrics;
pub mod paths;
pub mod persist;
pub mod probe;
pub mod process;
pub mod qga;
pub mod qmp;
pub mod readiness;

pub use backend::{BackendConfig, DefineExtras, QemuBackend, QemuError, StopOutcome};
