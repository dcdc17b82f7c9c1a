//! The QEMU side of limiquantix-node.
//!
//! - [`model`]: the versioned VM definition (`vm.json`) and its validation.
//! - [`argv`]: the typed QEMU command-line builder, with the boot-safety rules.
//! - [`storage`]: qcow2 headers, format detection, overlays, blank disks, boot inspection.
//! - [`firmware`]: BIOS/UEFI selection, OVMF discovery and per-VM variables.
//! - [`accel`]: accelerator selection (`auto`, `kvm`, `tcg`).
//! - [`paths`]: the per-VM file layout under the state and run directories.
//! - [`qmp`]: the async QMP client.
//! - [`qga`]: the async guest-agent client.
//! - [`readiness`]: boot phases from the serial console and cloud-init's verdict via the agent.
//! - [`state`]: VM run states and the operation/transition table.
//! - [`persist`]: atomic `vm.json` and runtime-state files.
//! - [`backend`]: the QEMU backend: define, start, stop, events, re-adoption after a restart.
//! - [`process`]: QEMU processes: detached spawn, exit watching, re-adoption, liveness.

pub mod accel;
pub mod argv;
pub mod backend;
pub mod firmware;
pub mod model;
pub mod paths;
pub mod persist;
pub mod process;
pub mod qga;
pub mod qmp;
pub mod readiness;
pub mod state;
pub mod storage;
