//! Virtual machines as limiquantix-node sees them, whatever runs them.
//!
//! This crate is the contract between the daemon and a hypervisor backend. It holds no process,
//! socket or file layout of any hypervisor:
//!
//! - [`model`]: the versioned VM definition (`vm.json`), ids, and its validation
//!   ([`model::ValidDefinition`] is a definition that passed it).
//! - [`state`]: run states, the operations ([`VmOp`]) and the transition table.
//! - [`backend`]: the [`VmBackend`] trait a hypervisor backend implements.
//! - [`status`], [`usage`], [`event`], [`guest`], [`error`]: what the trait's methods answer.
//! - [`readiness`]: the pure boot-phase classifier (console lines and cloud-init's verdict in,
//!   [`readiness::BootPhase`] out).
//! - [`hotplug`]: the checks of attaching and detaching disks and NICs every backend makes.
//! - [`resize`]: the checks of a disk resize every backend makes (grow only).
//! - [`accel`]: the accelerator choice (`auto`, `kvm`, `tcg`).
//! - [`snapshot`]: snapshot requests, listings, names and the snapshot tree.
//! - [`guest_ops`]: operations inside a guest through its agent, and their limits.
//! - [`deadline`]: the caller's deadline, for work a backend queues.
//! - [`migration`]: live migration's parameters, progress and the incoming side's endpoint.

pub mod accel;
pub mod backend;
pub mod deadline;
pub mod error;
pub mod event;
pub mod guest;
pub mod guest_ops;
pub mod hotplug;
pub mod migration;
pub mod model;
pub mod readiness;
pub mod resize;
pub mod snapshot;
pub mod state;
pub mod status;
pub mod usage;

pub use backend::{ConsoleIo, ConsoleStream, VmBackend};
pub use error::BackendError;
pub use event::{VmEvent, VmEventKind};
pub use guest::{AgentPing, GuestFacts, GuestFilesystem, GuestNic, GuestUsage};
pub use model::{ValidDefinition, VmDefinition, VmId};
pub use resize::ResizeError;
pub use snapshot::{SnapshotInfo, SnapshotRequest};
pub use state::{VmOp, VmState, valid_transition};
pub use status::{LogTail, VmEntry, VmLogs, VmStatus, VncEndpoint};
pub use usage::{DiskUsage, MemorySource, VmUsage};
