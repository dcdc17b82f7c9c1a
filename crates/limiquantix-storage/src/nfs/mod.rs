//! NFS shares for storage pools: a validated share ([`NfsSpec`]), the mount table
//! ([`read_mountinfo`], [`find_mount`]), and mounting and unmounting through util-linux `mount`
//! and `umount` ([`ensure_mounted`], [`unmount`]).
//!
//! An existing mount is adopted only when its source is exactly the share's `server:/export`;
//! anything else mounted at the mount point is refused and left alone.

mod error;
mod mount;
mod mountinfo;
mod spec;

pub use error::NfsError;
pub use mount::{COMMAND_TIMEOUT, MountOutcome, ensure_mounted, unmount};
pub use mountinfo::{MOUNTINFO, MountEntry, find_mount, parse_mountinfo, read_mountinfo};
pub use spec::{NFS_VERSIONS, NfsSpec, REFUSED_OPTIONS};

#[cfg(test)]
mod tests;
