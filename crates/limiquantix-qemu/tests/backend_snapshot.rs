//! Snapshots through the QEMU backend against real QEMU (TCG) and the tiny guest, one boot for
//! every live check: disk-only snapshots of a stopped VM with `qemu-img`, memory snapshots of
//! the running guest (`snapshot-save`), reverting them live (disk content written with QMP
//! `qemu-io` between snapshot and revert comes back), the tree (parents, current, deleting keeps
//! children), the refusals, and settling an operation a crash interrupted.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{READY, SERIAL, config, tiny_vm, wait_count, wait_event};
use limiquantix_qemu::backend::{DefineExtras, QemuBackend};
use limiquantix_storage::volume::read_snapshot_names;
use limiquantix_vm::model::{DiskFormat, DiskSource, DiskSpec, IoLimits, VmId};
use limiquantix_vm::state::VmState;
use limiquantix_vm::{BackendError, SnapshotInfo, SnapshotRequest, VmBackend, VmEventKind};
use serde_json::json;

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

fn req(name: &str, disk_only: bool) -> SnapshotRequest {
    SnapshotRequest {
        name: name.into(),
        description: format!("{name} by the test"),
        quiesce: false,
        disk_only,
    }
}

/// `qemu-io -d <device> "<cmd>"` through the human monitor, on disk `data`'s own block backend
/// (QEMU 7.2 prints qemu-io's output on its stdout, not in the answer: only errors come back).
async fn qemu_io(b: &QemuBackend, id: &VmId, cmd: &str) {
    let qmp = b.qmp(id).await.unwrap();
    let line = format!("qemu-io -d /machine/peripheral/data/virtio-backend \"{cmd}\"");
    let out = qmp
        .execute(
            "human-monitor-command",
            Some(json!({ "command-line": line })),
        )
        .await
        .unwrap();
    assert_eq!(out.as_str(), Some(""), "{line}");
}

/// Writes byte `p` over the first 64 KiB of disk `data` inside the running QEMU, and flushes.
async fn write(b: &QemuBackend, id: &VmId, p: u8) {
    qemu_io(b, id, &format!("write -P {p:#x} 0 64k")).await;
    qemu_io(b, id, "flush").await;
}

/// Whether the first 64 KiB of the image hold byte `p`, read from the host while QEMU runs
/// (`qemu-io -r -U`, shared read-only).
fn holds(file: &Path, p: u8) -> bool {
    let out = std::process::Command::new("qemu-io")
        .args([
            "-r",
            "-U",
            "-f",
            "qcow2",
            "-c",
            &format!("read -P {p:#x} 0 64k"),
        ])
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("read 65536/65536") || text.contains("verification failed"),
        "{text}"
    );
    !text.contains("verification failed")
}

/// (id, name, parent, current, memory) of each snapshot.
fn shape(l: &[SnapshotInfo]) -> Vec<(String, String, Option<String>, bool, bool)> {
    l.iter()
        .map(|s| {
            (
                s.id.clone(),
                s.name.clone(),
                s.parent_id.clone(),
                s.current,
                s.memory,
            )
        })
        .collect()
}

fn tags(path: &Path) -> Vec<String> {
    read_snapshot_names(path).unwrap()
}

fn precondition(r: Result<impl std::fmt::Debug, BackendError>, needle: &str) {
    match r {
        Err(BackendError::Precondition(m)) if m.contains(needle) => {}
        other => panic!("expected a precondition naming {needle:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_of_a_stopped_and_a_running_vm() {
    let _serial = SERIAL.lock().await;
    let began = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let backend = QemuBackend::open(config(tmp.path())).await.unwrap();
    let mut events = backend.subscribe();
    let ro_file = tmp.path().join("ro.img");
    std::fs::write(&ro_file, vec![0u8; MIB as usize]).unwrap();
    let mut def = tiny_vm("snapshots");
    let blank = |size_bytes| DiskSource::Blank { size_bytes };
    def.disks
        .push(disk("data", blank(64 * MIB), DiskFormat::Qcow2));
    let mut logs = disk("logs", blank(32 * MIB), DiskFormat::Qcow2);
    logs.limits = Some(IoLimits {
        iops_total: Some(10_000),
        ..IoLimits::default()
    });
    def.disks.push(logs);
    let mut ro = disk("ro", DiskSource::Path { path: ro_file }, DiskFormat::Raw);
    ro.readonly = true;
    def.disks.push(ro);
    let id = def.id.clone();
    backend
        .define(def.into_valid().unwrap(), DefineExtras::default())
        .await
        .unwrap();
    let paths = backend.paths(&id).unwrap();
    let files = [
        paths.disk_file(0, DiskFormat::Qcow2),
        paths.disk_file(1, DiskFormat::Qcow2),
    ];

    // (1) Stopped: disk-only with qemu-img on each writable disk; the read-only raw disk is
    // left out. Names are unique and checked.
    let cold = VmBackend::create_snapshot(&backend, &id, req("cold", false))
        .await
        .unwrap();
    assert_eq!(
        (cold.id.as_str(), cold.memory, cold.vm_state, cold.current),
        ("snap-1", false, VmState::Stopped, true)
    );
    for f in &files {
        assert_eq!(tags(f), ["snap-1"], "{}", f.display());
    }
    let again = VmBackend::create_snapshot(&backend, &id, req("cold", false)).await;
    assert!(
        matches!(again, Err(BackendError::SnapshotExists { .. })),
        "{again:?}"
    );
    let bad = VmBackend::create_snapshot(&backend, &id, req("a b", false)).await;
    assert!(matches!(bad, Err(BackendError::Invalid(_))), "{bad:?}");
    wait_event(
        &mut events,
        &id,
        BOOT,
        |k| matches!(k, VmEventKind::SnapshotCreated { snapshot_id } if snapshot_id == "snap-1"),
    )
    .await;

    // (2) Running: a memory snapshot, then a write, then a live revert brings the data back.
    backend.start(&id).await.unwrap();
    wait_count(&paths.serial_log(), READY, 1, BOOT).await;
    write(&backend, &id, 0x11).await;
    let warm = VmBackend::create_snapshot(&backend, &id, req("warm", false))
        .await
        .unwrap();
    assert_eq!(
        (warm.memory, warm.vm_state, warm.parent_id.as_deref()),
        (true, VmState::Running, Some("snap-1"))
    );
    write(&backend, &id, 0x22).await;
    assert!(holds(&files[0], 0x22));
    VmBackend::revert_snapshot(&backend, &id, "snap-2", false)
        .await
        .unwrap();
    assert!(
        holds(&files[0], 0x11),
        "the revert did not bring the disk back"
    );
    assert_eq!(backend.status(&id).await.unwrap().state, VmState::Running);
    assert_eq!(
        backend
            .qmp(&id)
            .await
            .unwrap()
            .query_status()
            .await
            .unwrap(),
        "running"
    );

    // (3) The tree: warm2 hangs from warm; deleting warm (live job) hands warm2 to cold.
    let warm2 = VmBackend::create_snapshot(&backend, &id, req("warm2", false))
        .await
        .unwrap();
    assert_eq!(warm2.parent_id.as_deref(), Some("snap-2"));
    VmBackend::delete_snapshot(&backend, &id, "snap-2")
        .await
        .unwrap();
    let l = VmBackend::list_snapshots(&backend, &id).await.unwrap();
    assert_eq!(
        shape(&l),
        [
            ("snap-1".into(), "cold".into(), None, false, false),
            (
                "snap-3".into(),
                "warm2".into(),
                Some("snap-1".into()),
                true,
                true
            ),
        ]
    );
    let gone = VmBackend::revert_snapshot(&backend, &id, "snap-2", false).await;
    assert!(
        matches!(
            gone,
            Err(BackendError::DeviceNotFound {
                kind: "snapshot",
                ..
            })
        ),
        "{gone:?}"
    );

    // (4) Disk-only while running (one transaction); quiesce without an agent is refused and
    // leaves nothing; reverting a disk-only snapshot of a running VM needs stop_if_running.
    write(&backend, &id, 0x33).await;
    let hot = VmBackend::create_snapshot(&backend, &id, req("hot", true))
        .await
        .unwrap();
    assert_eq!(
        (hot.id.as_str(), hot.memory, hot.vm_state),
        ("snap-4", false, VmState::Running)
    );
    let mut quiet = req("quiet", true);
    quiet.quiesce = true;
    precondition(
        VmBackend::create_snapshot(&backend, &id, quiet).await,
        "guest agent",
    );
    precondition(
        VmBackend::revert_snapshot(&backend, &id, "snap-4", false).await,
        "holds no memory",
    );
    assert_eq!(
        VmBackend::list_snapshots(&backend, &id)
            .await
            .unwrap()
            .len(),
        3
    );

    // (5) Paused: reverting a memory snapshot keeps it paused.
    backend.pause(&id).await.unwrap();
    VmBackend::revert_snapshot(&backend, &id, "snap-3", false)
        .await
        .unwrap();
    assert_eq!(backend.status(&id).await.unwrap().state, VmState::Paused);
    assert!(holds(&files[0], 0x11));
    backend.resume(&id).await.unwrap();

    // (6) stop_if_running: forced off, disks reverted with qemu-img, stays stopped.
    VmBackend::revert_snapshot(&backend, &id, "snap-4", true)
        .await
        .unwrap();
    assert_eq!(backend.status(&id).await.unwrap().state, VmState::Stopped);
    let l = VmBackend::list_snapshots(&backend, &id).await.unwrap();
    assert!(l.iter().find(|s| s.id == "snap-4").unwrap().current);

    // (7) Stopped, back to a memory snapshot: started from it and running.
    VmBackend::revert_snapshot(&backend, &id, "snap-3", false)
        .await
        .unwrap();
    assert_eq!(backend.status(&id).await.unwrap().state, VmState::Running);
    assert_eq!(
        backend
            .qmp(&id)
            .await
            .unwrap()
            .query_status()
            .await
            .unwrap(),
        "running"
    );
    assert!(holds(&files[0], 0x11));
    backend.force_stop(&id).await.unwrap();

    // (8) Stopped, delete with qemu-img: the tag leaves every disk, the children stay.
    VmBackend::delete_snapshot(&backend, &id, "snap-1")
        .await
        .unwrap();
    for f in &files {
        assert_eq!(tags(f), ["snap-3", "snap-4"], "{}", f.display());
    }
    let l = VmBackend::list_snapshots(&backend, &id).await.unwrap();
    let parents: Vec<_> = l.iter().map(|s| s.parent_id.as_deref()).collect();
    assert_eq!(parents, [None, Some("snap-3")], "{l:?}");

    // (9) A crash in the middle: a pending create with the tag on one disk only is undone at
    // the next open; one with the tag on every disk is completed.
    drop(backend);
    let sj = paths.vm_dir.join("snapshots.json");
    let pending = |n: u32| {
        let mut f: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&sj).unwrap()).unwrap();
        f["pending"] = json!({ "op": "create", "record": {
            "id": format!("snap-{n}"), "name": format!("crash{n}"), "created_at_ms": 1,
            "vm_state": "stopped", "disks": ["data", "logs"] } });
        std::fs::write(&sj, serde_json::to_vec(&f).unwrap()).unwrap();
    };
    let by_hand = |file: &Path, tag: &str| {
        let st = std::process::Command::new("qemu-img")
            .args(["snapshot", "-c", tag])
            .arg(file)
            .status()
            .unwrap();
        assert!(st.success());
    };
    pending(98);
    by_hand(&files[0], "snap-98");
    let backend = QemuBackend::open(config(tmp.path())).await.unwrap();
    assert_eq!(
        tags(&files[0]),
        ["snap-3", "snap-4"],
        "the partial tag stayed"
    );
    let l = VmBackend::list_snapshots(&backend, &id).await.unwrap();
    assert!(l.iter().all(|s| s.id != "snap-98"), "{l:?}");
    drop(backend);
    pending(99);
    by_hand(&files[0], "snap-99");
    by_hand(&files[1], "snap-99");
    let backend = QemuBackend::open(config(tmp.path())).await.unwrap();
    let l = VmBackend::list_snapshots(&backend, &id).await.unwrap();
    let last = l.last().unwrap();
    assert_eq!((last.id.as_str(), last.current), ("snap-99", true), "{l:?}");
    assert!(
        std::fs::read_to_string(&sj)
            .unwrap()
            .find("pending")
            .is_none()
    );

    // (10) A writable raw disk refuses the whole snapshot, naming the disk.
    let mut raw = tiny_vm("raw");
    raw.disks
        .push(disk("scratch", blank(8 * MIB), DiskFormat::Raw));
    let raw_id = raw.id.clone();
    backend
        .define(raw.into_valid().unwrap(), DefineExtras::default())
        .await
        .unwrap();
    precondition(
        VmBackend::create_snapshot(&backend, &raw_id, req("x", false)).await,
        "\"scratch\" is raw",
    );
    eprintln!("snapshot checks took {:?}", began.elapsed());
}
