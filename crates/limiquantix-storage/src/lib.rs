//! Disk images: qcow2 headers, format detection (one magic table, [`magic`]), overlays, blank
//! disks, growing an image, boot inspection, the checks of the files a VM definition names, the volumes of
//! storage pools ([`volume`]), and NFS mounts for storage pools ([`nfs`]).
//!
//! Functions that touch files are blocking unless they are `async` (those run `qemu-img` under
//! tokio and do their file reads in `spawn_blocking`; [`nfs`] runs `mount` and `umount` the same
//! way).

mod create;
mod error;
mod format;
pub mod guest;
mod inspect;
pub mod magic;
pub mod nfs;
pub mod qcow2;
mod resize;
mod sources;
pub mod volume;

pub use create::{create_blank, create_overlay};
pub use error::StorageError;
pub use format::{DetectedFormat, detect_format};
pub use inspect::{BootInspection, PartitionTable, inspect_boot};
pub use qcow2::{Qcow2Error, Qcow2Header};
pub use resize::grow_image;
pub use sources::check_sources;

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
#[cfg(test)]
mod tests;
