//! Disks of a CreateVM request: bus, format, pool, the three source kinds (an existing image,
//! an overlay on a backing image, a blank disk) and I/O limits. Images are opened to check
//! their format and that their backing chain stays inside the allowed roots.

use super::fields::{GIB, device_ids, enum_value, size_bytes};
use crate::confine::Confinement;
use crate::error::ApiError;
use limiquantix_proto::v1 as pb;
use limiquantix_storage::volume::{VolumeId, find_volume};
use limiquantix_storage::{DetectedFormat, detect_format};
use limiquantix_vm::model::{self as m, DiskSource, IoLimits};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Deepest backing chain accepted under a disk image.
const MAX_BACKING_DEPTH: usize = 16;

/// Checks disk `i` of the request and builds its model. Also returns whether the disk is an
/// overlay on a backing image.
pub(super) fn disk(
    i: usize,
    d: &pb::DiskSpec,
    confinement: &Confinement,
    pools: &BTreeMap<String, PathBuf>,
) -> Result<(m::DiskSpec, DiskIds), ApiError> {
    disk_at(&format!("spec.disks[{i}]"), i, d, confinement, pools)
}

/// [`disk`] for the disk at wire field `f` (AttachDisk's `disk`), numbered `i` when it needs a
/// generated id.
pub(super) fn disk_at(
    f: &str,
    i: usize,
    d: &pb::DiskSpec,
    confinement: &Confinement,
    pools: &BTreeMap<String, PathBuf>,
) -> Result<(m::DiskSpec, DiskIds), ApiError> {
    let f = f.to_string();
    let resolved;
    let d = match volume_path(&f, d, pools)? {
        Some(path) => {
            resolved = pb::DiskSpec { path, ..d.clone() };
            &resolved
        }
        None => d,
    };
    let (id, api_id) = device_ids(&f, &d.id, "disk", i)?;
    let bus = disk_bus(&f, d.bus)?;
    let requested =
        enum_value::<pb::DiskFormat>(&format!("{f}.format"), d.format, "0 QCOW2, 1 RAW")?;
    let pool_dir = if d.pool_id.is_empty() {
        None
    } else {
        Some(check_pool(&f, d, pools)?)
    };
    let (source, format) = match (d.path.is_empty(), d.backing_file.is_empty()) {
        (false, false) => {
            return Err(ApiError::invalid(
                f,
                "set either path (use an existing image) or backing_file (create an overlay), not both",
            ));
        }
        (false, true) => existing_image(&f, d, requested, confinement)?,
        (true, false) => overlay(&f, d, requested, confinement)?,
        (true, true) => blank(&f, d, requested)?,
    };
    Ok((
        m::DiskSpec {
            id,
            source,
            bus,
            format,
            readonly: d.readonly,
            boot_index: None,
            limits: io_limits(d),
        },
        DiskIds {
            api_id,
            // Only a disk the daemon creates goes into the pool; an existing image stays put.
            dir: pool_dir.filter(|_| d.path.is_empty()),
        },
    ))
}

/// A `path` that is a volume id (no `/`) resolved to the volume's file: in the disk's pool
/// (`pool_id`), else in the one pool that has it. `None` for a path that is a path.
fn volume_path(
    f: &str,
    d: &pb::DiskSpec,
    pools: &BTreeMap<String, PathBuf>,
) -> Result<Option<String>, ApiError> {
    if d.path.is_empty() || d.path.contains('/') {
        return Ok(None);
    }
    let field = format!("{f}.path");
    let id = VolumeId::parse(&field, &d.path)?;
    let found: Vec<PathBuf> = pools
        .iter()
        .filter(|(pid, _)| d.pool_id.is_empty() || **pid == d.pool_id)
        .filter_map(|(_, dir)| find_volume(dir, &id))
        .collect();
    match found.as_slice() {
        [one] => Ok(Some(one.display().to_string())),
        [] => Err(ApiError::invalid(
            field,
            format!(
                "{id:?} is no volume of {}; give an absolute path or an existing volume id",
                if d.pool_id.is_empty() {
                    "any pool".to_string()
                } else {
                    format!("pool {:?}", d.pool_id)
                }
            ),
        )),
        _ => Err(ApiError::invalid(
            field,
            format!("volume {id:?} exists in several pools; set pool_id"),
        )),
    }
}

/// What [`disk`] found besides the disk itself.
pub(super) struct DiskIds {
    /// The caller's id for the disk, when it is not a device id of ours.
    pub(super) api_id: Option<String>,
    /// The pool directory the disk is created in, when it is not the VM's directory.
    pub(super) dir: Option<PathBuf>,
}

/// The model bus of wire field `{f}.bus`. The LimiQuantix control plane casts its own bus enum
/// to ours by number, so 4 (its IDE) also arrives; it gets SATA, the disk bus every machine
/// type has (on q35, IDE disks are SATA anyway: both sit on the AHCI controller).
fn disk_bus(f: &str, bus: i32) -> Result<m::DiskBus, ApiError> {
    /// The control plane's IDE, cast to our enum.
    const CAST_IDE: i32 = 4;
    if bus == CAST_IDE {
        return Ok(m::DiskBus::Sata);
    }
    let bus = enum_value::<pb::DiskBus>(
        &format!("{f}.bus"),
        bus,
        "0 VIRTIO, 1 SCSI, 2 SATA, 3 IDE (4 is taken as SATA)",
    )?;
    Ok(match bus {
        pb::DiskBus::Virtio => m::DiskBus::Virtio,
        pb::DiskBus::Scsi => m::DiskBus::Scsi,
        pb::DiskBus::Sata => m::DiskBus::Sata,
        pb::DiskBus::Ide => m::DiskBus::Ide,
    })
}

/// Checks a disk's `pool_id` and returns the pool's directory: the pool exists, and a disk
/// naming an existing image (`path`) has it inside the pool. A disk the daemon creates (no
/// `path`) is created in the pool's directory.
fn check_pool(
    f: &str,
    d: &pb::DiskSpec,
    pools: &BTreeMap<String, PathBuf>,
) -> Result<PathBuf, ApiError> {
    let Some(pool_dir) = pools.get(&d.pool_id) else {
        return Err(ApiError::invalid(
            format!("{f}.pool_id"),
            format!(
                "pool {:?} not found on this node (configured: {})",
                d.pool_id,
                pools.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    if !d.path.is_empty() {
        let pool = Confinement::new(pool_dir, []);
        pool.check(&format!("{f}.path"), &d.path)?;
    }
    Ok(pool_dir.clone())
}

/// A disk that uses an existing image (`path`), in the detected format unless RAW is asked.
fn existing_image(
    f: &str,
    d: &pb::DiskSpec,
    requested: pb::DiskFormat,
    confinement: &Confinement,
) -> Result<(DiskSource, m::DiskFormat), ApiError> {
    let path = confinement.check(&format!("{f}.path"), &d.path)?;
    let detected = check_image(&format!("{f}.path"), &path, confinement)?;
    // Format 0 (QCOW2) is also the wire default, so it means "as detected". RAW is
    // honoured as asked (reading a qcow2 file raw is safe; the reverse is not).
    let format = match (requested, detected.format()) {
        (pb::DiskFormat::Raw, _) => m::DiskFormat::Raw,
        (_, fmt) => fmt,
    };
    if d.size_gib != 0 {
        return Err(ApiError::invalid(
            format!("{f}.size_gib"),
            "an existing image (path) keeps its size; leave size_gib 0",
        ));
    }
    Ok((DiskSource::Path { path }, format))
}

/// A qcow2 overlay on `backing_file`, as large as the backing image unless a larger size is
/// asked.
fn overlay(
    f: &str,
    d: &pb::DiskSpec,
    requested: pb::DiskFormat,
    confinement: &Confinement,
) -> Result<(DiskSource, m::DiskFormat), ApiError> {
    let backing = confinement.check(&format!("{f}.backing_file"), &d.backing_file)?;
    let detected = check_image(&format!("{f}.backing_file"), &backing, confinement)?;
    if requested == pb::DiskFormat::Raw {
        return Err(ApiError::invalid(
            format!("{f}.format"),
            "a disk on a backing_file is a qcow2 overlay; set format QCOW2",
        ));
    }
    let virtual_size = detected.virtual_size();
    let size = if d.size_gib == 0 {
        virtual_size
    } else {
        size_bytes(&format!("{f}.size_gib"), d.size_gib)?
    };
    if size < virtual_size {
        return Err(ApiError::invalid(
            format!("{f}.size_gib"),
            format!(
                "{} GiB is smaller than the backing image ({virtual_size} bytes, {:.2} GiB); \
                 give at least {} GiB or 0 for the image's size",
                d.size_gib,
                virtual_size as f64 / GIB as f64,
                virtual_size.div_ceil(GIB)
            ),
        ));
    }
    Ok((
        DiskSource::Overlay {
            backing,
            size_bytes: size,
        },
        m::DiskFormat::Qcow2,
    ))
}

/// A blank disk of `size_gib` GiB (which must be set) in the requested format.
fn blank(
    f: &str,
    d: &pb::DiskSpec,
    requested: pb::DiskFormat,
) -> Result<(DiskSource, m::DiskFormat), ApiError> {
    if d.size_gib == 0 {
        return Err(ApiError::invalid(
            format!("{f}.size_gib"),
            "a blank disk needs a size (1 GiB or more), or give path or backing_file",
        ));
    }
    let size = size_bytes(&format!("{f}.size_gib"), d.size_gib)?;
    let format = match requested {
        pb::DiskFormat::Qcow2 => m::DiskFormat::Qcow2,
        pb::DiskFormat::Raw => m::DiskFormat::Raw,
    };
    Ok((DiskSource::Blank { size_bytes: size }, format))
}

/// The I/O limits of a disk; `None` when neither IOPS nor throughput is limited.
fn io_limits(d: &pb::DiskSpec) -> Option<IoLimits> {
    (d.iops_limit != 0 || d.throughput_mbps != 0).then(|| IoLimits {
        iops_total: (d.iops_limit != 0).then_some(d.iops_limit),
        bps_total: (d.throughput_mbps != 0).then(|| d.throughput_mbps.saturating_mul(1_000_000)),
        ..IoLimits::default()
    })
}

/// Checks that an image file is qcow2 or raw and that its whole backing chain stays inside the
/// allowed roots. Returns what was detected.
fn check_image(
    field: &str,
    path: &Path,
    confinement: &Confinement,
) -> Result<DetectedFormat, ApiError> {
    let mut current = path.to_path_buf();
    let mut first = None;
    for _ in 0..=MAX_BACKING_DEPTH {
        let detected =
            detect_format(&current).map_err(|e| ApiError::invalid(field, e.to_string()))?;
        let backing = backing_of(field, &current, &detected)?;
        if first.is_none() {
            first = Some(detected);
        }
        match backing {
            None => return Ok(first.unwrap_or(DetectedFormat::Raw { size: 0 })),
            Some(b) => {
                let field = format!("{field} (backing file of {})", current.display());
                current = confinement.check(&field, &b.display().to_string())?;
            }
        }
    }
    Err(ApiError::invalid(
        field,
        format!("the backing chain is deeper than {MAX_BACKING_DEPTH} images"),
    ))
}

/// The backing file named by image `current` (relative names resolved against its directory),
/// `None` when it has none. Refuses encrypted qcow2 images and backing names that are not UTF-8.
fn backing_of(
    field: &str,
    current: &Path,
    detected: &DetectedFormat,
) -> Result<Option<PathBuf>, ApiError> {
    match detected {
        DetectedFormat::Qcow2(h) if h.crypt_method != 0 => Err(ApiError::invalid(
            field,
            format!(
                "{} is an encrypted qcow2 image; encrypted images are not supported",
                current.display()
            ),
        )),
        DetectedFormat::Qcow2(h) => match (&h.backing_file, h.backing_path()) {
            (None, _) => Ok(None),
            (Some(_), None) => Err(ApiError::invalid(
                field,
                format!(
                    "{} names a backing file that is not UTF-8",
                    current.display()
                ),
            )),
            (Some(_), Some(b)) => Ok(Some(match current.parent() {
                Some(dir) if b.is_relative() => dir.join(b),
                _ => b.to_path_buf(),
            })),
        },
        DetectedFormat::Raw { .. } => Ok(None),
    }
}
