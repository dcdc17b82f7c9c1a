//! What happened to a VM: the events a backend publishes (and the daemon adds its own).

use std::time::SystemTime;

use crate::model::VmId;
use crate::readiness::BootPhase;

/// Something that happened to a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmEvent {
    /// The VM.
    pub vm_id: VmId,
    /// What happened.
    pub kind: VmEventKind,
    /// What happened, for people.
    pub message: String,
    /// When it was seen.
    pub at: SystemTime,
}

impl VmEvent {
    /// An event seen now, with the kind's own message ([`VmEventKind::describe`]).
    pub fn now(vm_id: VmId, kind: VmEventKind) -> Self {
        let message = kind.describe();
        Self::with_message(vm_id, kind, message)
    }

    /// An event seen now, with a message of the caller's.
    pub fn with_message(vm_id: VmId, kind: VmEventKind, message: String) -> Self {
        Self {
            vm_id,
            kind,
            message,
            at: SystemTime::now(),
        }
    }
}

/// The kinds of [`VmEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEventKind {
    /// The VM was defined.
    Defined,
    /// The VM was deleted.
    Deleted,
    /// The hypervisor started and the guest runs.
    Started,
    /// The hypervisor exited after a guest shutdown or a requested stop.
    Stopped,
    /// The vCPUs were paused.
    Paused,
    /// The vCPUs resumed.
    Resumed,
    /// The machine was reset.
    Reset {
        /// Whether the guest asked for it (a reboot inside the guest).
        guest: bool,
    },
    /// The machine shut down; the hypervisor exits next.
    Shutdown {
        /// Whether the guest asked for it.
        guest: bool,
        /// The hypervisor's reason (QEMU: `guest-shutdown`, `host-qmp-quit`, `host-signal`, ...).
        reason: String,
    },
    /// The guest kernel panicked (needs a panic device in the guest).
    GuestPanicked {
        /// What the hypervisor did (QEMU: `pause`, `poweroff`, `run`).
        action: String,
    },
    /// The hypervisor exited without a guest shutdown or a requested stop.
    Crashed {
        /// How it ended.
        reason: String,
    },
    /// The guest reached a new boot phase (firmware, kernel, cloud-init stage, ready, failed).
    Boot {
        /// The new phase.
        phase: BootPhase,
    },
    /// The guest agent started answering.
    AgentConnected,
    /// The guest agent stopped answering.
    AgentDisconnected,
    /// A snapshot was taken.
    SnapshotCreated {
        /// Its id.
        snapshot_id: String,
    },
    /// The VM went back to a snapshot.
    SnapshotReverted {
        /// Its id.
        snapshot_id: String,
    },
    /// A snapshot was deleted.
    SnapshotDeleted {
        /// Its id.
        snapshot_id: String,
    },
    /// A disk or NIC was attached (hot-plugged, or added to a stopped VM's definition).
    DeviceAttached {
        /// Disk or NIC.
        kind: crate::hotplug::DeviceKind,
        /// Its device id.
        device_id: String,
    },
    /// A disk or NIC was detached.
    DeviceDetached {
        /// Disk or NIC.
        kind: crate::hotplug::DeviceKind,
        /// Its device id.
        device_id: String,
    },
    /// The guest left for another node (a live migration completed); this node forgot the VM.
    MigratedOut {
        /// Where it went (the target's API address).
        target: String,
    },
    /// The guest arrived from another node (a live migration completed) and runs here.
    MigratedIn,
}

impl VmEventKind {
    /// What the event says, for people.
    pub fn describe(&self) -> String {
        match self {
            Self::Defined => "VM defined".into(),
            Self::Deleted => "VM deleted".into(),
            Self::Started => "VM started".into(),
            Self::Stopped => "VM stopped".into(),
            Self::Paused => "VM paused".into(),
            Self::Resumed => "VM resumed".into(),
            Self::Reset { guest: true } => "the guest rebooted".into(),
            Self::Reset { guest: false } => "VM reset".into(),
            Self::Shutdown { guest, reason } => format!(
                "machine shut down ({}{reason})",
                if *guest { "by the guest: " } else { "" }
            ),
            Self::GuestPanicked { action } => {
                format!("the guest kernel panicked (QEMU action: {action})")
            }
            Self::Crashed { reason } => format!("VM crashed: {reason}"),
            Self::Boot { phase } => format!("guest boot: {phase}"),
            Self::AgentConnected => "the guest agent answers".into(),
            Self::AgentDisconnected => "the guest agent stopped answering".into(),
            Self::SnapshotCreated { snapshot_id } => format!("snapshot {snapshot_id} taken"),
            Self::SnapshotReverted { snapshot_id } => format!("reverted to snapshot {snapshot_id}"),
            Self::SnapshotDeleted { snapshot_id } => format!("snapshot {snapshot_id} deleted"),
            Self::DeviceAttached { kind, device_id } => format!("{kind} {device_id} attached"),
            Self::DeviceDetached { kind, device_id } => format!("{kind} {device_id} detached"),
            Self::MigratedOut { target } => format!("VM migrated out to {target}"),
            Self::MigratedIn => "VM migrated in".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_for_people() {
        let id = VmId::parse("0d6b5c3e-8f1a-4c2b-9e7d-1a2b3c4d5e6f").unwrap();
        let e = VmEvent::now(
            id.clone(),
            VmEventKind::Shutdown {
                guest: true,
                reason: "guest-shutdown".into(),
            },
        );
        assert_eq!(
            e.message,
            "machine shut down (by the guest: guest-shutdown)"
        );
        assert_eq!(
            VmEvent::now(
                id,
                VmEventKind::Boot {
                    phase: BootPhase::Ready
                }
            )
            .message,
            "guest boot: ready"
        );
    }
}
