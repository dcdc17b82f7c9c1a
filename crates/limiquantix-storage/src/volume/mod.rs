//! Volumes: the disk files of a storage pool, `<pool>/<volume id>.qcow2` (or `.img` for a raw
//! disk), and what can be done to them with real files and `qemu-img`: list and describe them
//! (natively, from their headers), create them empty, as overlays or as full copies (with
//! progress), grow them, take qcow2 internal snapshots, and measure a pool's capacity.

mod copy;
mod files;
mod id;
mod ops;
mod snapshots;
mod usage;

pub use copy::{CopySource, copy_to_qcow2};
pub use files::{VolumeInfo, find_volume, list_volumes, read_volume, volume_file};
pub use id::{VolumeId, check_volume_name};
pub use ops::{blockdev_json, create_snapshot, resize_image};
pub use snapshots::read_snapshot_names;
pub use usage::{PoolUsage, filesystem_usage, pool_usage};

#[cfg(test)]
mod tests;
