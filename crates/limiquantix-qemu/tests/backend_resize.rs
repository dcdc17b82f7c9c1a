//! Growing disks through the QEMU backend against real QEMU (TCG) and the tiny guest: on the
//! image file while the VM is stopped, live over QMP while it runs or is paused. One boot for
//! every check.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{READY, SERIAL, config, tiny_vm, wait_count};
use limiquantix_qemu::backend::{DefineExtras, QemuBackend, QemuError};
use limiquantix_storage::{DetectedFormat, detect_format};
use limiquantix_vm::model::{DiskFormat, DiskSource, DiskSpec, IoLimits, VmId};
use limiquantix_vm::resize::recorded_size;
use limiquantix_vm::state::VmState;
use limiquantix_vm::{BackendError, ResizeError, VmBackend};
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;
const BOOT: Duration = Duration::from_secs(120);

fn disk(id: &str, source: DiskSource, format: DiskFormat) -> DiskSpec {
    DiskSpec {
        id: id.into(),
        source,
        bus: Default::default(),
        format,
        readonly: false,
        boot_index: None,
        limits: None,
    }
}

/// The virtual size the image's header gives, checking its format.
fn file_size(path: &Path, format: DiskFormat) -> u64 {
    let found = detect_format(path).unwrap();
    assert_eq!(found.format(), format, "{}", path.display());
    if let DetectedFormat::Raw { size } = found {
        assert_eq!(size, std::fs::metadata(path).unwrap().len());
    }
    found.virtual_size()
}

/// The size the definition records for disk `disk`.
fn defined_size(backend: &QemuBackend, id: &VmId, disk: &str) -> Option<u64> {
    let def = backend.get(id).unwrap();
    recorded_size(def.disks.iter().find(|d| d.id == disk).unwrap())
}

/// What QEMU reports for disk `disk` (whose device attaches to block node `top`): the size of
/// its format node and the size its device sees (`query-block`).
async fn qemu_sizes(backend: &QemuBackend, id: &VmId, disk: &str, top: &str) -> (u64, u64) {
    let qmp = backend.qmp(id).await.unwrap();
    let nodes = qmp
        .execute("query-named-block-nodes", Some(json!({ "flat": true })))
        .await
        .unwrap();
    let fmt = format!("{disk}-fmt");
    let node = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node-name"] == fmt.as_str())
        .unwrap_or_else(|| panic!("no node {fmt} in {nodes}"));
    let blocks = qmp.execute("query-block", None).await.unwrap();
    let device = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["inserted"]["node-name"] == top)
        .unwrap_or_else(|| panic!("no device on {top} in {blocks}"));
    let size = |v: &Value| v["image"]["virtual-size"].as_u64().unwrap();
    (size(node), size(&device["inserted"]))
}

fn assert_shrink(r: Result<u64, QemuError>, current: u64, requested: u64) {
    match r {
        Err(QemuError::Resize(ResizeError::Shrink {
            current: c,
            requested: r,
            ..
        })) => assert_eq!((c, r), (current, requested)),
        other => panic!("expected a refused shrink, got {other:?}"),
    }
}

/// Stopped: a qcow2 and a raw disk grow on their files, a shrink, an odd size, a read-only and
/// an unknown disk are refused and change nothing. Running: both grow live (the throttled one
/// through its throttle node), QEMU and the file agree, a shrink and an unknown disk are
/// refused. Paused: it grows live too. Stopped again: the files keep their sizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disks_grow_stopped_running_and_paused_and_never_shrink() {
    let _serial = SERIAL.lock().await;
    let began = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let backend = QemuBackend::open(config(tmp.path())).await.unwrap();

    let ro_file = tmp.path().join("ro.img");
    std::fs::write(&ro_file, vec![0u8; MIB as usize]).unwrap();
    let mut def = tiny_vm("resize");
    let blank = |size_bytes| DiskSource::Blank { size_bytes };
    def.disks
        .push(disk("data", blank(64 * MIB), DiskFormat::Qcow2));
    let mut scratch = disk("scratch", blank(16 * MIB), DiskFormat::Raw);
    scratch.limits = Some(IoLimits {
        iops_total: Some(10_000),
        ..IoLimits::default()
    });
    def.disks.push(scratch);
    let mut ro = disk(
        "ro",
        DiskSource::Path {
            path: ro_file.clone(),
        },
        DiskFormat::Raw,
    );
    ro.readonly = true;
    def.disks.push(ro);
    let id = def.id.clone();
    backend
        .define(def.into_valid().unwrap(), DefineExtras::default())
        .await
        .unwrap();
    let paths = backend.paths(&id).unwrap();
    let data = paths.disk_file(0, DiskFormat::Qcow2);
    let raw = paths.disk_file(1, DiskFormat::Raw);
    assert_eq!(file_size(&data, DiskFormat::Qcow2), 64 * MIB);

    // (a) Stopped: qemu-img on the files.
    let before = backend.resize_disk(&id, "data", 128 * MIB).await.unwrap();
    assert_eq!(before, 64 * MIB);
    assert_eq!(file_size(&data, DiskFormat::Qcow2), 128 * MIB);
    assert_eq!(defined_size(&backend, &id, "data"), Some(128 * MIB));
    assert_shrink(
        backend.resize_disk(&id, "data", 96 * MIB).await,
        128 * MIB,
        96 * MIB,
    );
    assert_eq!(file_size(&data, DiskFormat::Qcow2), 128 * MIB);
    assert_eq!(defined_size(&backend, &id, "data"), Some(128 * MIB));
    // The same size again changes nothing and says so.
    let same = backend.resize_disk(&id, "data", 128 * MIB).await.unwrap();
    assert_eq!(same, 128 * MIB);
    assert!(matches!(
        backend.resize_disk(&id, "data", 128 * MIB + 1).await,
        Err(QemuError::Resize(ResizeError::BadSize { .. }))
    ));
    let before = backend.resize_disk(&id, "scratch", 32 * MIB).await.unwrap();
    assert_eq!(before, 16 * MIB);
    assert_eq!(file_size(&raw, DiskFormat::Raw), 32 * MIB);
    assert!(matches!(
        backend.resize_disk(&id, "ro", 2 * MIB).await,
        Err(QemuError::Resize(ResizeError::ReadOnly { .. }))
    ));
    assert_eq!(file_size(&ro_file, DiskFormat::Raw), MIB);
    // Through the trait: the categories the daemon maps to API codes.
    let unknown = VmBackend::resize_disk(&backend, &id, "nope", 128 * MIB).await;
    assert!(
        matches!(&unknown, Err(BackendError::DeviceNotFound { kind: "disk", device_id, .. }) if device_id == "nope"),
        "{unknown:?}"
    );
    let shrink = VmBackend::resize_disk(&backend, &id, "data", 96 * MIB).await;
    assert!(
        matches!(shrink, Err(BackendError::Invalid(_))),
        "{shrink:?}"
    );

    // (b) Running: QMP block_resize.
    backend.start(&id).await.unwrap();
    wait_count(&paths.serial_log(), READY, 1, BOOT).await;
    assert_eq!(
        qemu_sizes(&backend, &id, "data", "data-fmt").await,
        (128 * MIB, 128 * MIB)
    );
    let before = backend.resize_disk(&id, "data", 192 * MIB).await.unwrap();
    assert_eq!(before, 128 * MIB);
    assert_eq!(
        qemu_sizes(&backend, &id, "data", "data-fmt").await,
        (192 * MIB, 192 * MIB)
    );
    assert_eq!(file_size(&data, DiskFormat::Qcow2), 192 * MIB);
    assert_eq!(defined_size(&backend, &id, "data"), Some(192 * MIB));
    assert_shrink(
        backend.resize_disk(&id, "data", 160 * MIB).await,
        192 * MIB,
        160 * MIB,
    );
    assert_eq!(
        qemu_sizes(&backend, &id, "data", "data-fmt").await,
        (192 * MIB, 192 * MIB)
    );
    assert!(matches!(
        backend.resize_disk(&id, "nope", 256 * MIB).await,
        Err(QemuError::Resize(ResizeError::NoSuchDisk { .. }))
    ));
    // A throttled disk grows through its throttle node, so its device sees the new size.
    let before = backend.resize_disk(&id, "scratch", 48 * MIB).await.unwrap();
    assert_eq!(before, 32 * MIB);
    assert_eq!(
        qemu_sizes(&backend, &id, "scratch", "scratch-thr").await,
        (48 * MIB, 48 * MIB)
    );
    assert_eq!(file_size(&raw, DiskFormat::Raw), 48 * MIB);

    // Paused: live as well.
    backend.pause(&id).await.unwrap();
    let before = backend.resize_disk(&id, "data", 256 * MIB).await.unwrap();
    assert_eq!(before, 192 * MIB);
    assert_eq!(
        qemu_sizes(&backend, &id, "data", "data-fmt").await,
        (256 * MIB, 256 * MIB)
    );
    assert_eq!(backend.status(&id).await.unwrap().state, VmState::Paused);

    // (c) Stopped again: the files keep what they grew to.
    backend.force_stop(&id).await.unwrap();
    assert_eq!(file_size(&data, DiskFormat::Qcow2), 256 * MIB);
    assert_eq!(file_size(&raw, DiskFormat::Raw), 48 * MIB);
    assert_eq!(defined_size(&backend, &id, "scratch"), Some(48 * MIB));
    backend.delete(&id).await.unwrap();
    assert!(!data.exists() && !raw.exists());
    assert!(ro_file.exists());
    eprintln!("resize test took {:?}", began.elapsed());
}
