//! What the node holds, as the control plane imports it: its VMs (SyncNodeVMs, SyncFullState)
//! and its images (ScanLocalImages: the image library and the pools).

use crate::images::{ImageFormat, ImageLibrary, KNOWN_EXTENSIONS, detect, validate_name};
use limiquantix_proto::compute::v1 as compute;
use limiquantix_proto::storage::v1 as storage;
use limiquantix_vm::{VmEntry, VmState};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Sub-directories of a pool that hold images: the control plane's downloads land in
/// `<pool>/cloud-images`, its ISO scan reads `<pool>/iso`.
const POOL_IMAGE_DIRS: &[&str] = &["", "cloud-images", "iso"];

/// The state as the upstream node names it (the control plane matches it case-insensitively:
/// running, paused, stopped, crashed). A VM starting or stopping still has its QEMU: running.
pub fn state_name(state: VmState) -> &'static str {
    match state {
        VmState::Running | VmState::Starting | VmState::Stopping => "Running",
        VmState::Paused => "Paused",
        VmState::Stopped => "Stopped",
        VmState::Crashed => "Crashed",
        VmState::Migrating => "Migrating",
    }
}

/// The power state of a VM status report.
fn power_state(state: VmState) -> compute::VmPowerState {
    match state {
        VmState::Running | VmState::Starting | VmState::Stopping => compute::VmPowerState::Running,
        VmState::Paused => compute::VmPowerState::Paused,
        VmState::Stopped => compute::VmPowerState::Stopped,
        VmState::Crashed => compute::VmPowerState::Crashed,
        VmState::Migrating => compute::VmPowerState::Migrating,
    }
}

/// A VM as SyncNodeVMs reports it: id, name, state, vCPUs, memory and disk files.
pub fn vm_info(entry: &VmEntry) -> compute::NodeVmInfo {
    let def = &entry.definition;
    compute::NodeVmInfo {
        id: def.id.to_string(),
        name: def.name.clone(),
        state: state_name(entry.status.state).into(),
        cpu_cores: def.cpu.vcpus(),
        memory_mib: def.memory.mib,
        disk_paths: entry
            .disk_files
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
    }
}

/// A VM as SyncFullState reports it.
pub fn vm_report(entry: &VmEntry) -> compute::VmStatusReport {
    let changed = entry
        .status
        .started_at
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    compute::VmStatusReport {
        id: entry.definition.id.to_string(),
        name: entry.definition.name.clone(),
        state: power_state(entry.status.state) as i32,
        state_changed_at_unix: changed,
        ..Default::default()
    }
}

/// The images of this node (blocking): the library's, then each pool's (its top level,
/// `cloud-images/` and `iso/`), qcow2, raw and ISO only, in a stable order.
pub fn scan_images(
    images_dir: &Path,
    pools: &BTreeMap<String, PathBuf>,
) -> Vec<storage::LocalImageInfo> {
    let mut files: Vec<PathBuf> = match ImageLibrary::open(images_dir).and_then(|l| l.list()) {
        Ok(list) => list.into_iter().map(|e| e.path).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the image library for the control plane");
            Vec::new()
        }
    };
    for dir in pools.values() {
        for sub in POOL_IMAGE_DIRS {
            files.extend(image_files(&dir.join(sub)));
        }
    }
    files.iter().filter_map(|p| describe(p)).collect()
}

/// The files of `dir` named like images (a known extension, a valid image name), sorted.
fn image_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
            (validate_name(&name).is_ok() && KNOWN_EXTENSIONS.contains(&ext.as_str()))
                .then(|| e.path())
        })
        .collect();
    out.sort();
    out
}

/// One image: path, file name, size, virtual size (from the qcow2 header; a raw image's is
/// its size), format and modification time. `None` for what is no usable image.
fn describe(path: &Path) -> Option<storage::LocalImageInfo> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path).ok()?;
    let mut header = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(crate::images::HEADER_LEN as u64)
                .read_to_end(&mut header)
        })
        .ok()?;
    let format = detect(&header);
    let virtual_size = match format {
        ImageFormat::Qcow2 => limiquantix_storage::detect_format(path)
            .ok()?
            .virtual_size(),
        ImageFormat::Raw | ImageFormat::Iso => meta.len(),
        ImageFormat::Foreign(_) | ImageFormat::Packed(_) => return None,
    };
    Some(storage::LocalImageInfo {
        path: path.display().to_string(),
        filename: path.file_name()?.to_string_lossy().into_owned(),
        size_bytes: meta.len(),
        virtual_size_bytes: virtual_size,
        format: format.as_str().to_owned(),
        modified_at: meta
            .modified()
            .map(|t| prost_types::Timestamp::from(t).to_string())
            .unwrap_or_default(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qcow2(path: &Path, size: &str) {
        let out = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(path)
            .arg(size)
            .output()
            .expect("qemu-img runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn images_of_the_library_and_the_pools() {
        let d = tempfile::tempdir().unwrap();
        let images = d.path().join("images");
        let pool = d.path().join("pool");
        std::fs::create_dir_all(pool.join("cloud-images")).unwrap();
        std::fs::create_dir_all(&images).unwrap();
        std::fs::write(images.join("seed.iso"), vec![0u8; 4096]).unwrap();
        std::fs::write(images.join("notes.txt"), b"not an image").unwrap();
        std::fs::write(pool.join("disk.raw"), vec![0u8; 1024]).unwrap();
        std::fs::write(pool.join("README"), b"x").unwrap();
        std::fs::write(pool.join("packed.img"), b"\xfd7zXZ\x00rest").unwrap();
        let pools = BTreeMap::from([("p".to_string(), pool.clone())]);
        let found = scan_images(&images, &pools);
        let names: Vec<&str> = found.iter().map(|i| i.filename.as_str()).collect();
        assert!(
            names.contains(&"seed.iso") && names.contains(&"disk.raw"),
            "{names:?}"
        );
        assert!(!names.contains(&"packed.img") && !names.contains(&"README"));
        let raw = found.iter().find(|i| i.filename == "disk.raw").unwrap();
        assert_eq!((raw.format.as_str(), raw.size_bytes), ("raw", 1024));
        assert_eq!(raw.virtual_size_bytes, 1024);
        assert!(raw.modified_at.ends_with('Z'), "{}", raw.modified_at);
        assert_eq!(raw.path, pool.join("disk.raw").display().to_string());
    }

    #[test]
    fn a_qcow2_reports_its_virtual_size() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("noble.qcow2");
        qcow2(&p, "3G");
        let info = describe(&p).unwrap();
        assert_eq!(info.format, "qcow2");
        assert_eq!(info.virtual_size_bytes, 3 << 30);
        assert!(info.size_bytes < 1 << 20, "{}", info.size_bytes);
    }

    #[test]
    fn states_are_named_as_upstream_does() {
        assert_eq!(state_name(VmState::Running), "Running");
        assert_eq!(state_name(VmState::Starting), "Running");
        assert_eq!(state_name(VmState::Stopped), "Stopped");
        assert_eq!(state_name(VmState::Paused), "Paused");
        assert_eq!(state_name(VmState::Crashed), "Crashed");
    }
}
