//! NoCloud seeds for cloud-init.
//!
//! This crate builds the small volume (volume id `cidata`) that cloud-init's NoCloud datasource
//! reads at boot: the files `user-data`, `meta-data` and optionally `network-config` and
//! `vendor-data`. It knows nothing of QEMU or gRPC.
//!
//! - [`iso9660`]: our own ISO 9660 writer (Joliet + Rock Ridge, deterministic); [`vfat`]: a FAT
//!   image labelled `CIDATA`.
//! - [`image`]: the file set both writers take.

pub mod error;
pub mod image;
pub mod iso9660;
pub mod password;
pub mod userdata;
pub mod validate;
pub mod vfat;

pub use error::{SeedError, ValidationError, ValidationWarning};
pub use userdata::DefaultUserData;
pub mod instance_id;
pub mod network;
pub mod seed;
pub mod yaml11;
