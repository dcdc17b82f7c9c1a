//! VM run states and the table of which operation is allowed in which state.
//!
//! [`valid_transition`] is the single source of truth: the backend asks it before every
//! operation, and a refused operation becomes a typed `InvalidTransition` error (never a silent
//! no-op). The table:
//!
//! | state \ op | start    | stop     | force_stop | reboot  | pause  | resume  | delete  | change_media | resize_disk | snapshot | revert_snapshot | delete_snapshot | attach_disk | detach_disk | attach_nic | detach_nic | migrate   |
//! |------------|----------|----------|------------|---------|--------|---------|---------|--------------|-------------|----------|-----------------|-----------------|-------------|-------------|------------|------------|-----------|
//! | stopped    | starting | -        | -          | -       | -      | -       | stopped | stopped      | stopped     | stopped  | stopped         | stopped         | stopped     | stopped     | stopped    | stopped    | -         |
//! | starting   | -        | -        | stopping   | -       | -      | -       | -       | -            | -           | -        | -               | -               | -           | -           | -          | -          | -         |
//! | running    | -        | stopping | stopping   | running | paused | -       | -       | running      | running     | running  | running         | running         | running     | running     | running    | running    | migrating |
//! | paused     | -        | stopping | stopping   | paused  | -      | running | -       | paused       | paused      | paused   | paused          | paused          | paused      | paused      | paused     | paused     | migrating |
//! | stopping   | -        | -        | stopping   | -       | -      | -       | -       | -            | -           | -        | -               | -               | -           | -           | -          | -          | -         |
//! | crashed    | starting | -        | -          | -       | -      | -       | stopped | crashed      | crashed     | crashed  | crashed         | crashed         | crashed     | crashed     | crashed    | crashed    | -         |
//! | migrating  | -        | -        | -          | -       | -      | -       | -       | -            | -           | -        | -               | -               | -           | -           | -          | -          | -         |
//!
//! The cell is the state the VM is in while (or right after) the operation runs; `starting`
//! ends in `running`, `stopping` in `stopped`. Process events move the state too: the QEMU
//! process exiting after a guest shutdown or a requested stop gives `stopped`, exiting any other
//! way gives `crashed`; QMP `STOP`/`RESUME` events move `running` and `paused`. `migrating`
//! (a live migration moves the guest to or from another node) refuses every operation: it ends
//! in `running` on the node that has the guest (or back where it was after a failure), and the
//! VM leaves the node that gave it away.

use serde::{Deserialize, Serialize};

/// The run state of a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmState {
    /// Defined, no QEMU process.
    Stopped,
    /// QEMU is being started (spawned, QMP not yet ready or guest not yet resumed).
    Starting,
    /// The guest runs.
    Running,
    /// The guest's vCPUs are stopped; QEMU is alive.
    Paused,
    /// A stop was requested; QEMU is still alive.
    Stopping,
    /// QEMU exited without a guest shutdown or a requested stop (killed, crashed, died while the
    /// daemon was away).
    Crashed,
    /// A live migration moves the guest out to another node or in from one; QEMU is alive and
    /// every other operation is refused until it ends.
    Migrating,
}

impl VmState {
    /// Every state, for exhaustive iteration.
    pub const ALL: [VmState; 7] = [
        Self::Stopped,
        Self::Starting,
        Self::Running,
        Self::Paused,
        Self::Stopping,
        Self::Crashed,
        Self::Migrating,
    ];

    /// Whether a QEMU process exists in this state.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Starting | Self::Running | Self::Paused | Self::Stopping | Self::Migrating
        )
    }

    /// The state's name as written in `vm.json`, events and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopping => "stopping",
            Self::Crashed => "crashed",
            Self::Migrating => "migrating",
        }
    }
}

impl std::fmt::Display for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operation on a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmOp {
    /// Start QEMU and run the guest.
    Start,
    /// Graceful stop: ACPI power button, then force off after the timeout.
    Stop,
    /// Immediate stop: terminate QEMU.
    ForceStop,
    /// Hard reset of the guest (`system_reset`).
    Reboot,
    /// Stop the vCPUs.
    Pause,
    /// Resume the vCPUs.
    Resume,
    /// Remove the VM and the files the backend created.
    Delete,
    /// Insert or eject a CD-ROM medium.
    ChangeMedia,
    /// Grow a disk: live while QEMU runs, on the image file while it does not.
    ResizeDisk,
    /// Take a snapshot (with memory while the VM runs).
    Snapshot,
    /// Go back to a snapshot.
    RevertSnapshot,
    /// Delete a snapshot.
    DeleteSnapshot,
    /// Add a disk: hot-plugged while QEMU runs, to the definition while it does not.
    AttachDisk,
    /// Remove a disk: unplugged while QEMU runs, from the definition while it does not.
    DetachDisk,
    /// Add a NIC (hot-plugged while QEMU runs).
    AttachNic,
    /// Remove a NIC (unplugged while QEMU runs).
    DetachNic,
    /// Move the running (or paused) guest to another node.
    Migrate,
}

impl VmOp {
    /// Every operation, for exhaustive iteration.
    pub const ALL: [VmOp; 17] = [
        Self::Start,
        Self::Stop,
        Self::ForceStop,
        Self::Reboot,
        Self::Pause,
        Self::Resume,
        Self::Delete,
        Self::ChangeMedia,
        Self::ResizeDisk,
        Self::Snapshot,
        Self::RevertSnapshot,
        Self::DeleteSnapshot,
        Self::AttachDisk,
        Self::DetachDisk,
        Self::AttachNic,
        Self::DetachNic,
        Self::Migrate,
    ];

    /// The operation's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::ForceStop => "force_stop",
            Self::Reboot => "reboot",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Delete => "delete",
            Self::ChangeMedia => "change_media",
            Self::ResizeDisk => "resize_disk",
            Self::Snapshot => "snapshot",
            Self::RevertSnapshot => "revert_snapshot",
            Self::DeleteSnapshot => "delete_snapshot",
            Self::AttachDisk => "attach_disk",
            Self::DetachDisk => "detach_disk",
            Self::AttachNic => "attach_nic",
            Self::DetachNic => "detach_nic",
            Self::Migrate => "migrate",
        }
    }
}

impl std::fmt::Display for VmOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `op` is allowed in `state`, and if so the state the VM is in while it runs.
pub fn valid_transition(state: VmState, op: VmOp) -> Option<VmState> {
    use VmOp as O;
    use VmState as S;
    match (state, op) {
        (S::Stopped | S::Crashed, O::Start) => Some(S::Starting),
        (S::Running | S::Paused, O::Stop) => Some(S::Stopping),
        (S::Starting | S::Running | S::Paused | S::Stopping, O::ForceStop) => Some(S::Stopping),
        (S::Running | S::Paused, O::Reboot) => Some(state),
        (S::Running, O::Pause) => Some(S::Paused),
        (S::Paused, O::Resume) => Some(S::Running),
        (S::Stopped | S::Crashed, O::Delete) => Some(S::Stopped),
        (S::Stopped | S::Crashed | S::Running | S::Paused, O::ChangeMedia | O::ResizeDisk) => {
            Some(state)
        }
        (
            S::Stopped | S::Crashed | S::Running | S::Paused,
            O::Snapshot
            | O::RevertSnapshot
            | O::DeleteSnapshot
            | O::AttachDisk
            | O::DetachDisk
            | O::AttachNic
            | O::DetachNic,
        ) => Some(state),
        (S::Running | S::Paused, O::Migrate) => Some(S::Migrating),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table from the module documentation, row by row (`-` = refused).
    const TABLE: [(VmState, [&str; 17]); 7] = [
        (
            VmState::Stopped,
            [
                "starting", "-", "-", "-", "-", "-", "stopped", "stopped", "stopped", "stopped",
                "stopped", "stopped", "stopped", "stopped", "stopped", "stopped", "-",
            ],
        ),
        (
            VmState::Starting,
            [
                "-", "-", "stopping", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-",
                "-", "-",
            ],
        ),
        (
            VmState::Running,
            [
                "-",
                "stopping",
                "stopping",
                "running",
                "paused",
                "-",
                "-",
                "running",
                "running",
                "running",
                "running",
                "running",
                "running",
                "running",
                "running",
                "running",
                "migrating",
            ],
        ),
        (
            VmState::Paused,
            [
                "-",
                "stopping",
                "stopping",
                "paused",
                "-",
                "running",
                "-",
                "paused",
                "paused",
                "paused",
                "paused",
                "paused",
                "paused",
                "paused",
                "paused",
                "paused",
                "migrating",
            ],
        ),
        (
            VmState::Stopping,
            [
                "-", "-", "stopping", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-",
                "-", "-",
            ],
        ),
        (
            VmState::Crashed,
            [
                "starting", "-", "-", "-", "-", "-", "stopped", "crashed", "crashed", "crashed",
                "crashed", "crashed", "crashed", "crashed", "crashed", "crashed", "-",
            ],
        ),
        (VmState::Migrating, ["-"; 17]),
    ];

    #[test]
    fn every_state_and_operation_matches_the_documented_table() {
        assert_eq!(TABLE.len(), VmState::ALL.len());
        for (state, row) in TABLE {
            for (op, want) in VmOp::ALL.iter().zip(row) {
                let got = valid_transition(state, *op).map_or("-", VmState::as_str);
                assert_eq!(got, want, "{state} + {op}");
            }
        }
    }

    #[test]
    fn the_documentation_table_is_the_tested_one() {
        let doc = include_str!("state.rs");
        let cells = |line: &str| -> Vec<String> {
            line.trim_start_matches("//!")
                .split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let header = doc
            .lines()
            .find(|l| l.starts_with("//! | state"))
            .expect("the table's header");
        let ops: Vec<String> = VmOp::ALL.iter().map(|o| o.to_string()).collect();
        assert_eq!(
            cells(header)[1..],
            ops[..],
            "the header names every operation"
        );
        for (state, row) in TABLE {
            let prefix = format!("//! | {:<10} |", state.as_str());
            let line = doc
                .lines()
                .find(|l| l.starts_with(&prefix))
                .unwrap_or_else(|| panic!("row {state} missing"));
            assert_eq!(cells(line)[1..], row[..], "row {state}");
        }
    }

    #[test]
    fn the_usual_mistakes_are_refused() {
        assert_eq!(valid_transition(VmState::Running, VmOp::Start), None);
        assert_eq!(valid_transition(VmState::Running, VmOp::Delete), None);
        assert_eq!(valid_transition(VmState::Paused, VmOp::Delete), None);
        assert_eq!(valid_transition(VmState::Stopped, VmOp::Stop), None);
        assert_eq!(valid_transition(VmState::Stopped, VmOp::Pause), None);
        assert_eq!(valid_transition(VmState::Paused, VmOp::Pause), None);
        assert_eq!(valid_transition(VmState::Running, VmOp::Resume), None);
        assert_eq!(valid_transition(VmState::Starting, VmOp::ResizeDisk), None);
        assert_eq!(valid_transition(VmState::Stopping, VmOp::ResizeDisk), None);
    }

    #[test]
    fn active_states_are_those_with_a_process() {
        let active: Vec<_> = VmState::ALL.into_iter().filter(|s| s.is_active()).collect();
        assert_eq!(
            active,
            [
                VmState::Starting,
                VmState::Running,
                VmState::Paused,
                VmState::Stopping,
                VmState::Migrating
            ]
        );
        // Only states without a process can be started or deleted.
        for s in VmState::ALL {
            assert_eq!(valid_transition(s, VmOp::Start).is_some(), !s.is_active());
            assert_eq!(valid_transition(s, VmOp::Delete).is_some(), !s.is_active());
        }
    }

    #[test]
    fn names_round_trip_through_serde() {
        for s in VmState::ALL {
            let j = serde_json::to_string(&s).unwrap();
            assert_eq!(j, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<VmState>(&j).unwrap(), s);
        }
        for o in VmOp::ALL {
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
        }
    }
}
