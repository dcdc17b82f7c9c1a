//! The seed model: the four NoCloud files, generated defaults, images, atomic writes.

use std::path::Path;

use serde::Serialize;

use crate::error::{SeedError, ValidationError, ValidationWarning};
use crate::image::ImageFile;
use crate::instance_id::instance_id;
use crate::iso9660::{self, IsoOptions};
use crate::userdata::{DefaultUserData, emit_yaml};
use crate::validate::{self, ValidateOptions};
use crate::vfat::{self, VfatOptions};

/// File name of the user-data file in the seed.
pub const USER_DATA: &str = "user-data";
/// File name of the meta-data file in the seed.
pub const META_DATA: &str = "meta-data";
/// File name of the network-config file in the seed.
pub const NETWORK_CONFIG: &str = "network-config";
/// File name of the vendor-data file in the seed.
pub const VENDOR_DATA: &str = "vendor-data";

/// user-data written when none is given: an empty cloud-config.
pub const EMPTY_USER_DATA: &[u8] = b"#cloud-config\n{}\n";

/// A NoCloud seed: what goes into the `cidata` volume.
///
/// `user-data` and `meta-data` are always written (cloud-init rejects a seed without them):
/// missing user-data becomes an empty cloud-config, missing meta-data is generated from
/// `instance_id` and `hostname`. `network-config` and `vendor-data` are written only when given.
#[derive(Clone, PartialEq, Eq)]
pub struct Seed {
    /// The instance-id written into generated meta-data (see [`mod@crate::instance_id`]).
    pub instance_id: String,
    /// The host name written into generated meta-data as `local-hostname` (left out when
    /// `None`, and cloud-init keeps the image's).
    pub hostname: Option<String>,
    /// user-data as given (cloud-config, script, MIME multipart...), or `None` for an empty
    /// cloud-config.
    pub user_data: Option<Vec<u8>>,
    /// meta-data as given (a YAML/JSON mapping), or `None` to generate it.
    pub meta_data: Option<Vec<u8>>,
    /// network-config (version 1 or 2), if any.
    pub network_config: Option<Vec<u8>>,
    /// vendor-data, if any.
    pub vendor_data: Option<Vec<u8>>,
}

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Sizes only: user-data may hold secrets.
        let len = |v: &Option<Vec<u8>>| v.as_ref().map(Vec::len);
        f.debug_struct("Seed")
            .field("instance_id", &self.instance_id)
            .field("hostname", &self.hostname)
            .field("user_data_len", &len(&self.user_data))
            .field("meta_data_len", &len(&self.meta_data))
            .field("network_config_len", &len(&self.network_config))
            .field("vendor_data_len", &len(&self.vendor_data))
            .finish()
    }
}

/// The files of a seed, ready for an image writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedFiles {
    /// `(name, contents)` in a fixed order: user-data, meta-data, then the optional files.
    pub files: Vec<(&'static str, Vec<u8>)>,
}

impl SeedFiles {
    /// The files as the image writers take them.
    pub fn image_files(&self) -> Vec<ImageFile<'_>> {
        self.files
            .iter()
            .map(|(name, data)| ImageFile::new(name, data))
            .collect()
    }

    /// The contents of file `name`, if present.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| d.as_slice())
    }
}

#[derive(Serialize)]
struct MetaData<'a> {
    #[serde(rename = "instance-id")]
    instance_id: &'a str,
    #[serde(rename = "local-hostname", skip_serializing_if = "Option::is_none")]
    local_hostname: Option<&'a str>,
}

impl Seed {
    /// A seed with only an instance-id and a host name (empty cloud-config, generated
    /// meta-data).
    pub fn new(instance_id: impl Into<String>, hostname: impl Into<String>) -> Self {
        Self {
            instance_id: instance_id.into(),
            hostname: Some(hostname.into()),
            user_data: None,
            meta_data: None,
            network_config: None,
            vendor_data: None,
        }
    }

    /// The default seed for a VM made from a cloud image: instance-id from
    /// [`instance_id`]`(vm_id, generation)`, the VM's host name, and [`DefaultUserData`] with
    /// user `admin`, the given SSH keys and, if given, a password (stored hashed). Validated.
    pub fn default_for_vm(
        vm_id: &str,
        generation: u32,
        hostname: &str,
        ssh_keys: &[String],
        password: Option<&str>,
    ) -> Result<Self, SeedError> {
        let mut user_data = DefaultUserData::new(hostname).ssh_keys(ssh_keys.iter().cloned());
        if let Some(password) = password {
            user_data = user_data.password(password)?;
        }
        Self::from_default_user_data(instance_id(vm_id, generation), &user_data)
    }

    /// A seed whose user-data is `user_data` (validated) and whose meta-data is generated.
    pub fn from_default_user_data(
        instance_id: impl Into<String>,
        user_data: &DefaultUserData,
    ) -> Result<Self, SeedError> {
        user_data.validate()?;
        let mut seed = Self::new(instance_id, user_data.hostname());
        seed.user_data = Some(user_data.to_yaml()?);
        validate_instance_id(&seed.instance_id)?;
        Ok(seed)
    }

    /// A seed from the files a user gave (each `None` when not given), validated: errors block,
    /// warnings are returned with the seed. Blocking (it may read cloud-init's schema from disk
    /// and run `python3` once to find it): call it from `spawn_blocking` in async code.
    pub fn from_user(
        instance_id: impl Into<String>,
        hostname: Option<String>,
        user_data: Option<Vec<u8>>,
        meta_data: Option<Vec<u8>>,
        network_config: Option<Vec<u8>>,
        vendor_data: Option<Vec<u8>>,
        options: &ValidateOptions,
    ) -> Result<(Self, Vec<ValidationWarning>), ValidationError> {
        let seed = Self {
            instance_id: instance_id.into(),
            hostname,
            user_data,
            meta_data,
            network_config,
            vendor_data,
        };
        let warnings = seed.validate(options)?;
        Ok((seed, warnings))
    }

    /// Checks everything a user gave (see [`crate::validate`]): errors block, warnings are
    /// returned.
    pub fn validate(
        &self,
        options: &ValidateOptions,
    ) -> Result<Vec<ValidationWarning>, ValidationError> {
        validate_instance_id(&self.instance_id)?;
        if let Some(hostname) = &self.hostname {
            validate::validate_hostname(hostname)?;
        }
        let mut warnings = Vec::new();
        let mut total = 0usize;
        if let Some(data) = &self.user_data {
            warnings.extend(validate::validate_user_data(data, options)?);
            total += data.len();
        }
        if let Some(data) = &self.meta_data {
            warnings.extend(validate::validate_meta_data(data)?);
            total += data.len();
        }
        if let Some(data) = &self.network_config {
            warnings.extend(validate::validate_network_config(data)?);
            total += data.len();
        }
        if let Some(data) = &self.vendor_data {
            warnings.extend(validate::validate_vendor_data(data, options)?);
            total += data.len();
        }
        validate::check_total_size(total)?;
        Ok(warnings)
    }

    /// The files of the seed, with defaults filled in. Does not validate.
    pub fn files(&self) -> Result<SeedFiles, SeedError> {
        let user_data = self
            .user_data
            .clone()
            .unwrap_or_else(|| EMPTY_USER_DATA.to_vec());
        let meta_data = match &self.meta_data {
            Some(m) => m.clone(),
            None => emit_yaml(&MetaData {
                instance_id: &self.instance_id,
                local_hostname: self.hostname.as_deref(),
            })?
            .into_bytes(),
        };
        let mut files = vec![(USER_DATA, user_data), (META_DATA, meta_data)];
        if let Some(n) = &self.network_config {
            files.push((NETWORK_CONFIG, n.clone()));
        }
        if let Some(v) = &self.vendor_data {
            files.push((VENDOR_DATA, v.clone()));
        }
        Ok(SeedFiles { files })
    }

    /// The seed as an ISO 9660 image (volume id `cidata`, Joliet + Rock Ridge).
    pub fn to_iso(&self, options: &IsoOptions) -> Result<Vec<u8>, SeedError> {
        let files = self.files()?;
        Ok(iso9660::write(&files.image_files(), options)?)
    }

    /// The seed as a FAT image (label `CIDATA`).
    pub fn to_vfat(&self, options: &VfatOptions) -> Result<Vec<u8>, SeedError> {
        let files = self.files()?;
        Ok(vfat::write(&files.image_files(), options)?)
    }
}

/// An instance-id: 1 to 128 printable ASCII characters without spaces.
fn validate_instance_id(id: &str) -> Result<(), ValidationError> {
    if (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(ValidationError::new(
            "instance-id",
            format!("{id:?} is not a valid instance-id"),
            "1 to 128 printable ASCII characters without spaces",
        ))
    }
}

/// Writes `bytes` to `path` atomically with mode 0600: a temporary file in the same directory,
/// flushed to disk, renamed over `path`, then the directory flushed. On error nothing is left
/// at `path` that was not there before.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SeedError> {
    limiquantix_fs::write_atomic(path, bytes, 0o600).map_err(|e| SeedError::Io {
        path: e.path.display().to_string(),
        source: e.source,
    })
}

/// Writes a seed image to `path` through a temporary file and a rename (mode 0600), as
/// [`write_atomic`] does, syncing the file and its directory only when `durable` (a command-line
/// tool that replaces `cloud-localds`, which does not sync, need not wait for the disk).
pub fn write_replace(path: &Path, bytes: &[u8], durable: bool) -> Result<(), SeedError> {
    limiquantix_fs::write_replace(path, bytes, 0o600, durable).map_err(|e| SeedError::Io {
        path: e.path.display().to_string(),
        source: e.source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_required_files() {
        let files = Seed::new("iid-1", "web1").files().unwrap();
        assert_eq!(files.get(USER_DATA), Some(EMPTY_USER_DATA));
        assert_eq!(
            files.get(META_DATA),
            Some(&b"instance-id: iid-1\nlocal-hostname: web1\n"[..])
        );
        assert_eq!(files.get(NETWORK_CONFIG), None);
    }

    #[test]
    fn default_for_vm_validates_and_keeps_instance_id_stable() {
        let keys = vec!["ssh-ed25519 AAAA k".to_owned()];
        let a = Seed::default_for_vm("vm-1", 0, "web1", &keys, None).unwrap();
        let b = Seed::default_for_vm("vm-1", 0, "web1", &keys, None).unwrap();
        assert_eq!(a.instance_id, "vm-1");
        assert_eq!(
            a.to_iso(&IsoOptions::at(5)).unwrap(),
            b.to_iso(&IsoOptions::at(5)).unwrap()
        );
        assert!(Seed::default_for_vm("vm-1", 0, "bad_name", &keys, None).is_err());
        assert!(!format!("{a:?}").contains("ssh-ed25519"));
    }

    #[test]
    fn atomic_write_sets_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.iso");
        write_atomic(&path, b"abc").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(write_atomic(&dir.path().join("missing/seed.iso"), b"x").is_err());
    }
}
