//! The RPCs this daemon does not implement yet, and what each waits for.

use crate::error::ApiError;
use tonic::{Response, Status};

/// What each unimplemented RPC waits for.
pub const PENDING: &[(&str, &str)] = &[
    (
        "AttachDisk",
        "device hot-plug in the QEMU backend (not scheduled yet)",
    ),
    (
        "DetachDisk",
        "device hot-plug in the QEMU backend (not scheduled yet)",
    ),
    (
        "AttachNIC",
        "device hot-plug in the QEMU backend (not scheduled yet)",
    ),
    (
        "DetachNIC",
        "device hot-plug in the QEMU backend (not scheduled yet)",
    ),
    ("PrepareMigration", "live migration (not scheduled yet)"),
    ("ReceiveMigration", "live migration (not scheduled yet)"),
    ("MigrateVM", "live migration (not scheduled yet)"),
    (
        "ExecuteInGuest",
        "guest-agent exec in the daemon (after issue 6; not scheduled yet)",
    ),
    (
        "ReadGuestFile",
        "guest-agent file access in the daemon (after issue 6; not scheduled yet)",
    ),
    (
        "WriteGuestFile",
        "guest-agent file access in the daemon (after issue 6; not scheduled yet)",
    ),
    (
        "GuestShutdown",
        "guest-agent shutdown in the daemon (after issue 6; not scheduled yet)",
    ),
    (
        "QuiesceFilesystems",
        "guest-agent fsfreeze with snapshots (not scheduled yet)",
    ),
    (
        "ThawFilesystems",
        "guest-agent fsfreeze with snapshots (not scheduled yet)",
    ),
    (
        "SyncTime",
        "guest-agent time sync in the daemon (after issue 6; not scheduled yet)",
    ),
    (
        "ListVolumes",
        "volume management in pools (not scheduled yet)",
    ),
    (
        "CreateVolume",
        "volume management in pools (not scheduled yet)",
    ),
    (
        "DeleteVolume",
        "volume management in pools (not scheduled yet)",
    ),
    (
        "ResizeVolume",
        "volume management in pools (not scheduled yet)",
    ),
    (
        "CloneVolume",
        "volume management in pools (not scheduled yet)",
    ),
    (
        "GetVolumeAttachInfo",
        "volume management in pools (not scheduled yet)",
    ),
    (
        "CreateVolumeSnapshot",
        "volume management in pools (not scheduled yet)",
    ),
];

/// The UNIMPLEMENTED answer of `method`.
pub fn answer<T>(method: &'static str) -> Result<Response<T>, Status> {
    let waits_for = PENDING
        .iter()
        .find(|(m, _)| *m == method)
        .map_or("a later release", |(_, w)| w);
    Err(ApiError::Unimplemented { method, waits_for }.into())
}
