//! Why a backend operation failed, by category: the daemon maps each category to one API code.
//! Backends keep their own detailed errors and sort them into these at the trait boundary; the
//! message of the detailed error is kept.

use crate::model::{ModelError, VmId};
use crate::state::{VmOp, VmState};

/// Why a [`crate::VmBackend`] operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// No VM has this id. The message holds "VM not found", the words the LimiQuantix control
    /// plane looks for.
    #[error("VM not found: no VM {vm_id} on this node")]
    NotFound {
        /// The id asked for.
        vm_id: VmId,
    },
    /// The VM exists but has no device with this id (of this kind). Its message never says
    /// "VM not found": the VM is there.
    #[error("VM {vm_id} has no {kind} {device_id:?}")]
    DeviceNotFound {
        /// The VM.
        vm_id: VmId,
        /// What was looked for: `disk`, `cdrom`, ...
        kind: &'static str,
        /// The device id asked for.
        device_id: String,
    },
    /// A VM with this id is already defined (with another definition).
    #[error("VM {vm_id} already exists")]
    AlreadyExists {
        /// The id.
        vm_id: VmId,
    },
    /// The VM has a snapshot with this name already.
    #[error("VM {vm_id} has a snapshot named {name:?} already")]
    SnapshotExists {
        /// The VM.
        vm_id: VmId,
        /// The name.
        name: String,
    },
    /// The operation is not allowed in the VM's state (see [`crate::state`]).
    #[error("VM {vm_id} is {state}: cannot {op}")]
    InvalidTransition {
        /// The VM.
        vm_id: VmId,
        /// Its state.
        state: VmState,
        /// The refused operation.
        op: VmOp,
    },
    /// The request needs the VM's hypervisor process and the VM has none.
    #[error("VM {vm_id} is {state}: it is not running")]
    NotRunning {
        /// The VM.
        vm_id: VmId,
        /// Its state.
        state: VmState,
    },
    /// The definition is not acceptable (the error names the field).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// An argument is not acceptable (the message names it).
    #[error("{0}")]
    Invalid(String),
    /// The request cannot be satisfied on this host now (a tool missing, a port taken, no
    /// bootable device, no agent answering, ...).
    #[error("{0}")]
    Precondition(String),
    /// The operation did not finish in time.
    #[error("{0}")]
    Timeout(String),
    /// Anything else (I/O errors, the hypervisor misbehaving).
    #[error("{0}")]
    Internal(String),
}

impl BackendError {
    /// The VM does not exist.
    pub fn not_found(vm_id: &VmId) -> Self {
        Self::NotFound {
            vm_id: vm_id.clone(),
        }
    }
}
