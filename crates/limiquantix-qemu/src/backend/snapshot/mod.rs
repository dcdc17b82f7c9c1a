//! Snapshots: internal qcow2 snapshots of every writable disk, with the memory and device state
//! while QEMU runs (QMP `snapshot-save`/`snapshot-load`/`snapshot-delete` jobs), disk-only over
//! an atomic QMP `transaction` of `blockdev-snapshot-internal-sync`, or with `qemu-img
//! snapshot` while it does not. The tree and the operation in progress are in `snapshots.json`
//! (`store`); an operation a crash interrupted is settled before the next one and when the
//! backend opens (`settle`): completed when every disk has the tag, undone otherwise.
//!
//! Layout: `store` (the file), `disks` (which disks, which block nodes), `offline`
//! (`qemu-img`), `live` (QMP jobs and the guest agent's freeze), `settle`, `ops` (the
//! operations).

mod disks;
mod live;
mod offline;
mod ops;
mod settle;
mod store;
