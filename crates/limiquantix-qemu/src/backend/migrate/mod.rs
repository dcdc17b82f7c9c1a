//! Live migration between two nodes' QEMU backends.
//!
//! `incoming` (the target: a VM defined from the source's definition over disks already
//! reachable here, a QEMU started with `-incoming defer` and `migrate-incoming`, then waiting
//! for the guest or giving up), `outgoing` (the source: `migrate-set-capabilities`,
//! `migrate-set-parameters`, `migrate`, progress from `query-migrate`, then giving the VM away
//! or taking the guest back), `qmp` (the QMP arguments and `query-migrate`'s answer, pure),
//! `forget` (ending a VM's QEMU and removing what this node keeps of it), `storage` (copying
//! the VM's own disks: NBD exports on the target, `blockdev-mirror` from the source), `settle`
//! (a source that opens after its daemon went away mid-migration), `tls` (between nodes: TLS
//! credentials from the node's certificate files, the target's ports).

mod forget;
mod incoming;
mod outgoing;
mod qmp;
mod settle;
mod storage;
mod tls;
