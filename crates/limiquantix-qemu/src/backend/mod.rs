//! The QEMU backend: defines, starts, stops and follows VMs, and finds them again after a
//! restart.
//!
//! [`QemuBackend::open`] loads every `<state>/vms/<id>/vm.json`, removes staging directories a
//! crashed `define` left, and reconciles each VM with reality: a QEMU still running it (pidfile,
//! `/proc/<pid>/cmdline` naming the VM's UUID, QMP handshake) is adopted and managed again; a VM
//! whose QEMU died while nobody watched is `stopped` when its runtime record says the end was
//! requested or the guest shut down, `crashed` otherwise.
//!
//! Operations on one VM are serialised by a per-VM lock; every operation first checks the state
//! table ([`limiquantix_vm::state::valid_transition`]) and fails with
//! [`QemuError::InvalidTransition`] when it does not apply. A monitor task per running QEMU
//! turns QMP events and the process exit into state changes and [`VmEvent`]s.
//!
//! Layout (children import each other one way, never from this file): `types` (configuration,
//! errors), `vm` (one VM's record), `core` ([`QemuBackend`], its shared state and helpers),
//! `monitor` (the task per running QEMU), `define`, `adopt` (opening), `start`, `stop`,
//! `admission` (caps on concurrent starts and disk creations, the VM count the open-file
//! limit serves), `media`, `migrate` (live migration, both halves), `resize` (growing a disk), `guest` (guest-agent operations), `snapshot` (snapshots and their tree), `query` (status and clients), `api` (the
//! [`limiquantix_vm::VmBackend`] impl).
//!
//! [`VmEvent`]: limiquantix_vm::VmEvent

mod admission;
mod adopt;
mod api;
mod core;
mod define;
mod guest;
mod hotplug;
mod hotplug_nic;
mod media;
mod migrate;
mod monitor;
mod plug;
mod query;
mod reconcile;
mod resize;
mod snapshot;
mod start;
mod stop;
mod types;
mod usage;
mod vm;

pub use self::core::QemuBackend;
pub use admission::{
    FD_RESERVE, FDS_PER_VM, FDS_PER_VM_MEASURED, current_nofile_limit, vm_capacity,
};
pub use types::{BackendConfig, DefineExtras, QemuError, StopOutcome};
pub use types::{DEFAULT_MAX_CONCURRENT_DISK_CREATIONS, DEFAULT_MAX_CONCURRENT_STARTS};
