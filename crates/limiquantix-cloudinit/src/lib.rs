//! NoCloud seeds for cloud-init.
//!
//! This crate builds the small volume (volume id `cidata`) that cloud-init's NoCloud datasource
//! reads at boot: `user-data`, `meta-data` and optionally `network-config` and `vendor-data`.
//! It knows nothing of QEMU or gRPC.
//!
//! # What a daemon calls
//!
//! ```
//! use limiquantix_cloudinit::iso9660::IsoOptions;
//! use limiquantix_cloudinit::seed::Seed;
//! use limiquantix_cloudinit::validate::{SchemaSource, ValidateOptions};
//!
//! // A VM made from a cloud image, no cloud-init given: the default seed.
//! let keys = vec!["ssh-ed25519 AAAAC3Nza... me@host".to_owned()];
//! let seed = Seed::default_for_vm("0d6b5c3e-8f1a-4c2b-9e7d-1a2b3c4d5e6f", 0, "web1", &keys, None)?;
//! let iso: Vec<u8> = seed.to_iso(&IsoOptions::at(1_700_000_000))?;
//! assert_eq!(&iso[16 * 2048 + 1..16 * 2048 + 6], b"CD001");
//!
//! // Files a user gave: validated before anything is written.
//! let options = ValidateOptions { schema: SchemaSource::Disabled }; // default: the installed schema
//! let (seed, warnings) = Seed::from_user(
//!     "0d6b5c3e-8f1a-4c2b-9e7d-1a2b3c4d5e6f",
//!     Some("web1".to_owned()),
//!     Some(b"#cloud-config\npackages: [htop]\n".to_vec()),
//!     None,
//!     None,
//!     None,
//!     &options,
//! )?;
//! assert!(warnings.is_empty());
//! let iso = seed.to_iso(&IsoOptions::at(1_700_000_000))?;
//! # let _ = iso;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Write the image with [`seed::write_atomic`] (mode 0600, never a partial file).
//!
//! # Instance-id policy
//!
//! See [`mod@instance_id`]: stable for a VM across restarts, bumped by an explicit reprovision,
//! unchanged when the seed is regenerated with the same content.
//!
//! # Modules
//!
//! - [`seed`]: the seed model, defaults, images, atomic writes;
//! - [`userdata`]: the default user-data; [`password`]: SHA-512 crypt hashes;
//! - [`validate`]: checks of user-given files, with cloud-init's own schema; [`yaml11`]: YAML
//!   read the way cloud-init (PyYAML) reads it;
//! - [`network`]: network-config version 2 from NIC descriptions;
//! - [`iso9660`]: our own ISO 9660 writer (Joliet + Rock Ridge, deterministic); [`vfat`]: a
//!   FAT image labelled `CIDATA`; [`image`]: the file set both take.

pub mod error;
pub mod image;
pub mod instance_id;
pub mod iso9660;
pub mod network;
pub mod password;
pub mod seed;
pub mod userdata;
pub mod validate;
pub mod vfat;
pub mod yaml11;

pub use error::{SeedError, ValidationError, ValidationWarning};
pub use instance_id::instance_id;
pub use seed::Seed;
pub use userdata::DefaultUserData;
