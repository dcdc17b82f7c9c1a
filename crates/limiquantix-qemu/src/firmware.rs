//! Firmware: BIOS or UEFI, OVMF discovery, the per-VM variable store.
//!
//! `firmware: auto` is resolved from the boot disk's partition table ([`limiquantix_storage::inspect_boot`]):
//! BIOS when the disk has MBR boot code (SeaBIOS starts faster), UEFI when it only has an EFI
//! system partition, BIOS with a warning when neither is found. An explicit choice that the image
//! cannot boot is kept, with a warning.

use std::path::{Path, PathBuf};

use crate::argv::{BootDevice, ResolvedFirmware, boot_order};
use crate::paths::RuntimePaths;
use limiquantix_storage::{self, BootInspection};
use limiquantix_vm::model::{DiskSource, Firmware, VmDefinition};

/// Where Debian/Ubuntu install OVMF.
pub const DEFAULT_OVMF_DIR: &str = "/usr/share/OVMF";

/// `(code, vars)` file names tried in order: 4 MiB builds first, then the 2 MiB ones.
const OVMF_CANDIDATES: &[(&str, &str)] = &[
    ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"),
    ("OVMF_CODE.fd", "OVMF_VARS.fd"),
];

/// OVMF images on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvmfPaths {
    /// Firmware code, mapped read-only.
    pub code: PathBuf,
    /// Pristine variable store, copied once per VM.
    pub vars_template: PathBuf,
}

/// Firmware problems.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// No OVMF pair was found.
    #[error(
        "UEFI firmware not found: none of {tried} exist (install the ovmf package, or configure \
         the OVMF code and vars paths)"
    )]
    OvmfNotFound {
        /// The paths looked at.
        tried: String,
    },
    /// UEFI is needed but no OVMF paths were given.
    #[error("the VM needs UEFI but no OVMF firmware is configured")]
    NoOvmf,
    /// Copying the variable store failed.
    #[error("cannot copy UEFI variables {} to {}: {source}", from.display(), to.display())]
    CopyVars {
        /// Template.
        from: PathBuf,
        /// Destination.
        to: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl OvmfPaths {
    /// Looks in [`DEFAULT_OVMF_DIR`].
    pub fn discover() -> Result<Self, FirmwareError> {
        Self::discover_in(&[Path::new(DEFAULT_OVMF_DIR)])
    }

    /// Looks for a code/vars pair in each directory, 4 MiB builds first.
    pub fn discover_in(dirs: &[&Path]) -> Result<Self, FirmwareError> {
        let mut tried = Vec::new();
        for dir in dirs {
            for (code, vars) in OVMF_CANDIDATES {
                let (code, vars) = (dir.join(code), dir.join(vars));
                if code.is_file() && vars.is_file() {
                    return Ok(Self {
                        code,
                        vars_template: vars,
                    });
                }
                tried.push(code.display().to_string());
            }
        }
        Err(FirmwareError::OvmfNotFound {
            tried: tried.join(", "),
        })
    }
}

/// The firmware chosen for a launch, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareChoice {
    /// BIOS or UEFI (never `Auto`).
    pub firmware: Firmware,
    /// Why, in words (for logs).
    pub reason: String,
    /// Set when the choice may not boot the image.
    pub warning: Option<String>,
}

/// Chooses the firmware from the definition and, when known, the boot disk's inspection.
pub fn choose(def: &VmDefinition, boot_disk: Option<&BootInspection>) -> FirmwareChoice {
    let (bios, uefi) = boot_disk.map_or((false, false), |i| (i.bios_bootable(), i.uefi_bootable()));
    let choice = |firmware, reason: &str, warning: Option<&str>| FirmwareChoice {
        firmware,
        reason: reason.to_owned(),
        warning: warning.map(str::to_owned),
    };
    match def.firmware {
        Firmware::Auto => match (boot_disk, bios, uefi) {
            (None, ..) => choice(
                Firmware::Bios,
                "auto: no disk image to inspect, BIOS by default",
                None,
            ),
            (_, true, _) => choice(
                Firmware::Bios,
                "auto: the boot disk has MBR boot code",
                None,
            ),
            (_, false, true) => choice(
                Firmware::Uefi,
                "auto: the boot disk has an EFI system partition and no BIOS boot code",
                None,
            ),
            (_, false, false) => choice(
                Firmware::Bios,
                "auto: BIOS by default",
                Some(
                    "the boot disk has neither MBR boot code nor an EFI system partition; \
                     it may not boot with either firmware",
                ),
            ),
        },
        Firmware::Bios => choice(
            Firmware::Bios,
            "bios requested",
            (boot_disk.is_some() && !bios && uefi).then_some(
                "firmware bios was requested but the boot disk has no MBR boot code, only an \
                 EFI system partition: it will probably not boot (use uefi or auto)",
            ),
        ),
        Firmware::Uefi => choice(
            Firmware::Uefi,
            "uefi requested",
            (boot_disk.is_some() && bios && !uefi).then_some(
                "firmware uefi was requested but the boot disk has no EFI system partition, only \
                 MBR boot code: it will probably not boot (use bios or auto)",
            ),
        ),
    }
}

/// The image to inspect for the first disk in boot order: the file for a path disk; for an
/// overlay, the overlay when it exists (it reads through to its backing) else the backing.
fn boot_image(def: &VmDefinition, paths: &RuntimePaths) -> Option<PathBuf> {
    let order = boot_order(def).ok()?;
    let first = order.first().filter(|e| e.kind == BootDevice::Disk)?;
    let (i, disk) = def
        .disks
        .iter()
        .enumerate()
        .find(|(_, d)| d.id == first.id)?;
    match &disk.source {
        DiskSource::Path { path } => Some(path.clone()),
        DiskSource::Overlay { backing, .. } => {
            let created = paths
                .created_disk(def, i)
                .unwrap_or_else(|| paths.disk_file(i, disk.format));
            Some(if created.exists() {
                created
            } else {
                backing.clone()
            })
        }
        DiskSource::Blank { .. } => None,
    }
}

/// Resolves the firmware for a launch and prepares UEFI's variable store (blocking I/O; call it
/// from `spawn_blocking`). The store is copied from the template once, mode 0600, and kept
/// across restarts (it holds the guest's boot entries).
pub fn prepare(
    def: &VmDefinition,
    paths: &RuntimePaths,
    ovmf: Option<&OvmfPaths>,
) -> Result<(ResolvedFirmware, FirmwareChoice), FirmwareError> {
    let inspection = boot_image(def, paths).and_then(|img| match limiquantix_storage::inspect_boot(&img) {
        Ok(i) => Some(i),
        Err(e) => {
            tracing::warn!(vm_id = %def.id, image = %img.display(), error = %e, "cannot inspect the boot disk");
            None
        }
    });
    let choice = choose(def, inspection.as_ref());
    if let Some(w) = &choice.warning {
        tracing::warn!(vm_id = %def.id, warning = %w, "firmware choice");
    }
    tracing::debug!(vm_id = %def.id, firmware = ?choice.firmware, reason = %choice.reason, "firmware resolved");
    if choice.firmware != Firmware::Uefi {
        return Ok((ResolvedFirmware::Bios, choice));
    }
    let ovmf = ovmf.ok_or(FirmwareError::NoOvmf)?;
    let vars = paths.uefi_vars();
    if !vars.exists() {
        copy_vars(&ovmf.vars_template, &vars)?;
    }
    Ok((
        ResolvedFirmware::Uefi {
            code: ovmf.code.clone(),
            vars,
        },
        choice,
    ))
}

/// Copies the template to `to` through a temporary file, mode 0600, then renames it.
fn copy_vars(from: &Path, to: &Path) -> Result<(), FirmwareError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |source| FirmwareError::CopyVars {
        from: from.to_owned(),
        to: to.to_owned(),
        source,
    };
    let tmp = to.with_extension("fd.tmp");
    std::fs::copy(from, &tmp).map_err(err)?;
    let f = std::fs::File::open(&tmp).map_err(err)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, to))
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use limiquantix_storage::PartitionTable;
    use limiquantix_vm::model::fixtures::cloud_vm;

    fn inspection(bios: bool, uefi: bool) -> BootInspection {
        BootInspection {
            table: PartitionTable::Gpt,
            mbr_boot_code: bios,
            bios_boot_partition: false,
            esp: uefi,
        }
    }

    #[test]
    fn auto_follows_the_partition_table() {
        let def = cloud_vm();
        let c = |b, u| choose(&def, Some(&inspection(b, u)));
        assert_eq!(c(true, true).firmware, Firmware::Bios);
        assert_eq!(c(true, false).firmware, Firmware::Bios);
        assert_eq!(c(false, true).firmware, Firmware::Uefi);
        let none = c(false, false);
        assert_eq!(none.firmware, Firmware::Bios);
        assert!(none.warning.is_some());
        assert!(c(true, false).warning.is_none());
    }

    #[test]
    fn explicit_choice_is_kept_with_a_warning() {
        let mut def = cloud_vm();
        def.firmware = Firmware::Bios;
        let c = choose(&def, Some(&inspection(false, true)));
        assert_eq!(c.firmware, Firmware::Bios);
        assert!(c.warning.unwrap().contains("use uefi or auto"));
        def.firmware = Firmware::Uefi;
        let c = choose(&def, Some(&inspection(true, false)));
        assert_eq!(c.firmware, Firmware::Uefi);
        assert!(c.warning.unwrap().contains("use bios or auto"));
        assert!(choose(&def, None).warning.is_none());
    }

    #[test]
    fn ovmf_discovery_and_vars_copy() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let e = OvmfPaths::discover_in(&[d]).unwrap_err();
        assert!(e.to_string().contains("OVMF_CODE_4M.fd"), "{e}");
        std::fs::write(d.join("OVMF_CODE.fd"), b"code").unwrap();
        std::fs::write(d.join("OVMF_VARS.fd"), b"vars").unwrap();
        let o = OvmfPaths::discover_in(&[d]).unwrap();
        assert_eq!(o.code, d.join("OVMF_CODE.fd"));
        std::fs::write(d.join("OVMF_CODE_4M.fd"), b"code4").unwrap();
        std::fs::write(d.join("OVMF_VARS_4M.fd"), b"vars4").unwrap();
        let o = OvmfPaths::discover_in(&[d]).unwrap();
        assert_eq!(o.vars_template, d.join("OVMF_VARS_4M.fd"));

        // A UEFI VM gets its own copy, made once and then kept.
        let mut def = cloud_vm();
        def.firmware = Firmware::Uefi;
        let paths = RuntimePaths::new(d, d, &def.id);
        std::fs::create_dir_all(&paths.vm_dir).unwrap();
        let (fw, _) = prepare(&def, &paths, Some(&o)).unwrap();
        assert_eq!(
            fw,
            ResolvedFirmware::Uefi {
                code: d.join("OVMF_CODE_4M.fd"),
                vars: paths.uefi_vars()
            }
        );
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(paths.uefi_vars()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        std::fs::write(paths.uefi_vars(), b"guest wrote this").unwrap();
        prepare(&def, &paths, Some(&o)).unwrap();
        assert_eq!(
            std::fs::read(paths.uefi_vars()).unwrap(),
            b"guest wrote this"
        );
        assert!(matches!(
            prepare(&def, &paths, None),
            Err(FirmwareError::NoOvmf)
        ));
        // The backing image of the overlay does not exist here: BIOS for auto, no failure.
        def.firmware = Firmware::Auto;
        let (fw, c) = prepare(&def, &paths, Some(&o)).unwrap();
        assert_eq!(fw, ResolvedFirmware::Bios);
        assert!(c.reason.contains("no disk image"), "{c:?}");

        // A real GPT image with only an EFI system partition resolves to UEFI.
        let img =
            limiquantix_storage::fixtures::partitioned(d, "esp.img", "label: gpt\ntype=U\n", false);
        def.disks[0].source = DiskSource::Path { path: img };
        def.disks[0].format = limiquantix_vm::model::DiskFormat::Raw;
        let (fw, c) = prepare(&def, &paths, Some(&o)).unwrap();
        assert!(matches!(fw, ResolvedFirmware::Uefi { .. }), "{c:?}");
    }
}
