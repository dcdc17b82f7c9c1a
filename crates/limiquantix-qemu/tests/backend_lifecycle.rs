//! The QEMU backend against real QEMU (TCG) and the tiny guest: lifecycle, re-adoption after a
//! backend restart, crash detection, boot safety. The tests in this binary run one at a time.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{BANNER, READY, SERIAL, config, count_in, tiny_vm, wait_count, wait_event};
use limiquantix_qemu::argv::BootError;
use limiquantix_qemu::backend::{DefineExtras, QemuBackend, QemuError, StopOutcome};
use limiquantix_qemu::process::{self, Signal};
use limiquantix_vm::VmEventKind;
use limiquantix_vm::model::{
    CdromRole, CdromSpec, DiskFormat, DiskSource, DiskSpec, VmDefinition, VmId,
};
use limiquantix_vm::state::{VmOp, VmState};

const BOOT: Duration = Duration::from_secs(120);
const EVENT: Duration = Duration::from_secs(30);

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

fn assert_invalid(r: Result<impl std::fmt::Debug, QemuError>, id: &VmId, s: VmState, o: VmOp) {
    match r {
        Err(QemuError::InvalidTransition { vm_id, state, op }) => {
            assert_eq!((&vm_id, state, op), (id, s, o));
        }
        other => panic!("expected InvalidTransition({s}, {o}), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_define_start_pause_resume_reboot_stop_start_force_stop_delete() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let backend = QemuBackend::open(config(tmp.path())).await.unwrap();
    let mut events = backend.subscribe();

    // A disk the VM was given (kept at delete) and a blank one the backend creates (deleted).
    let given = tmp.path().join("given.img");
    std::fs::write(&given, vec![0u8; 1 << 20]).unwrap();
    let mut def = tiny_vm("lifecycle");
    def.disks.push(disk(
        "data0",
        DiskSource::Path {
            path: given.clone(),
        },
        DiskFormat::Raw,
    ));
    def.disks.push(disk(
        "scratch",
        DiskSource::Blank {
            size_bytes: 8 << 20,
        },
        DiskFormat::Qcow2,
    ));
    def.cdroms.push(CdromSpec {
        id: "cd0".into(),
        path: None,
        bootable: false,
        role: CdromRole::Media,
        boot_index: None,
    });
    let id = def.id.clone();

    let st = backend
        .define(def.clone().into_valid().unwrap(), DefineExtras::default())
        .await
        .unwrap();
    assert_eq!(st.state, VmState::Stopped);
    wait_event(&mut events, &id, EVENT, |k| *k == VmEventKind::Defined).await;
    // Same definition again: accepted. A different one under the same id: refused.
    backend
        .define(def.clone().into_valid().unwrap(), DefineExtras::default())
        .await
        .unwrap();
    let mut other = def.clone();
    other.name = "other".into();
    assert!(matches!(
        backend
            .define(other.into_valid().unwrap(), DefineExtras::default())
            .await,
        Err(QemuError::AlreadyExists { .. })
    ));
    let paths = backend.paths(&id).unwrap();
    let scratch = paths.disk_file(1, DiskFormat::Qcow2);
    assert!(scratch.exists());

    // Operations that make no sense on a stopped VM are typed errors.
    assert_invalid(backend.pause(&id).await, &id, VmState::Stopped, VmOp::Pause);
    assert_invalid(
        backend.stop(&id, None).await,
        &id,
        VmState::Stopped,
        VmOp::Stop,
    );
    assert_invalid(
        backend.resume(&id).await,
        &id,
        VmState::Stopped,
        VmOp::Resume,
    );

    let st = backend.start(&id).await.unwrap();
    assert_eq!(st.state, VmState::Running);
    assert!(st.pid.is_some() && st.started_at.is_some());
    wait_event(&mut events, &id, EVENT, |k| *k == VmEventKind::Started).await;
    let serial = paths.serial_log();
    wait_count(&serial, READY, 1, BOOT).await;
    assert_invalid(backend.start(&id).await, &id, VmState::Running, VmOp::Start);
    assert_invalid(
        backend.delete(&id).await,
        &id,
        VmState::Running,
        VmOp::Delete,
    );
    assert_invalid(
        backend.resume(&id).await,
        &id,
        VmState::Running,
        VmOp::Resume,
    );

    // Media change, live: insert, then eject.
    let iso = tmp.path().join("media.iso");
    std::fs::write(&iso, vec![0u8; 64 << 10]).unwrap();
    backend
        .change_media(&id, "cd0", Some(iso.clone()))
        .await
        .unwrap();
    assert_eq!(
        inserted(&backend, &id, "cd0").await,
        Some(iso.display().to_string())
    );
    assert_eq!(
        backend.get(&id).unwrap().cdroms[0].path.as_deref(),
        Some(iso.as_path())
    );
    backend.change_media(&id, "cd0", None).await.unwrap();
    assert_eq!(inserted(&backend, &id, "cd0").await, None);
    assert!(matches!(
        backend.change_media(&id, "nope", None).await,
        Err(QemuError::NoSuchCdrom { .. })
    ));
    assert!(matches!(
        backend
            .change_media(&id, "cd0", Some(tmp.path().join("absent.iso")))
            .await,
        Err(QemuError::Storage(_))
    ));

    backend.pause(&id).await.unwrap();
    wait_event(&mut events, &id, EVENT, |k| *k == VmEventKind::Paused).await;
    let st = backend.status(&id).await.unwrap();
    assert_eq!(st.state, VmState::Paused);
    assert_eq!(st.run_state.as_deref(), Some("paused"));
    assert_invalid(backend.pause(&id).await, &id, VmState::Paused, VmOp::Pause);

    backend.resume(&id).await.unwrap();
    wait_event(&mut events, &id, EVENT, |k| *k == VmEventKind::Resumed).await;
    assert_eq!(backend.status(&id).await.unwrap().state, VmState::Running);

    backend.reboot(&id).await.unwrap();
    wait_event(&mut events, &id, EVENT, |k| {
        matches!(k, VmEventKind::Reset { .. })
    })
    .await;
    wait_count(&serial, BANNER, 2, BOOT).await;
    wait_count(&serial, READY, 2, BOOT).await;

    // Graceful stop: the guest sees the ACPI power button and powers off by itself.
    let outcome = backend
        .stop(&id, Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(outcome, StopOutcome::Graceful);
    let kind = wait_event(&mut events, &id, EVENT, |k| {
        matches!(k, VmEventKind::Shutdown { .. })
    })
    .await;
    assert_eq!(
        kind,
        VmEventKind::Shutdown {
            guest: true,
            reason: "guest-shutdown".into()
        }
    );
    wait_event(&mut events, &id, EVENT, |k| *k == VmEventKind::Stopped).await;
    assert_eq!(count_in(&serial, "LQ-TINY-GUEST POWEROFF"), 1);
    let st = backend.status(&id).await.unwrap();
    assert_eq!((st.state, st.pid), (VmState::Stopped, None));

    // Start again, then force it off.
    backend.start(&id).await.unwrap();
    wait_count(&serial, READY, 3, BOOT).await;
    backend.force_stop(&id).await.unwrap();
    wait_event(&mut events, &id, EVENT, |k| *k == VmEventKind::Stopped).await;
    assert_eq!(backend.status(&id).await.unwrap().state, VmState::Stopped);
    assert_invalid(
        backend.force_stop(&id).await,
        &id,
        VmState::Stopped,
        VmOp::ForceStop,
    );

    backend.delete(&id).await.unwrap();
    wait_event(&mut events, &id, EVENT, |k| *k == VmEventKind::Deleted).await;
    assert!(!paths.vm_dir.exists(), "VM directory left behind");
    assert!(!paths.run_dir.exists(), "run directory left behind");
    assert!(
        given.exists(),
        "a disk the VM was given must never be deleted"
    );
    assert!(matches!(
        backend.status(&id).await,
        Err(QemuError::NotFound { .. })
    ));
    assert!(backend.list().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_backend_re_adopts_the_running_guest_without_restarting_it() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let def = tiny_vm("readopt");
    let id = def.id.clone();
    let (pid, serial) = {
        let backend = QemuBackend::open(config(tmp.path())).await.unwrap();
        backend
            .define(def.into_valid().unwrap(), DefineExtras::default())
            .await
            .unwrap();
        let st = backend.start(&id).await.unwrap();
        let serial = backend.paths(&id).unwrap().serial_log();
        wait_count(&serial, READY, 1, BOOT).await;
        (st.pid.unwrap(), serial)
    };
    // The old backend is gone; its QEMU is not.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(process::is_qemu_of(pid, &id));

    let backend = QemuBackend::open(config(tmp.path())).await.unwrap();
    let mut events = backend.subscribe();
    let st = backend.status(&id).await.unwrap();
    assert_eq!(st.state, VmState::Running);
    assert_eq!(st.pid, Some(pid));
    assert!(st.started_at.is_some());
    assert_eq!(st.run_state.as_deref(), Some("running"));

    // Controllable, and the guest never rebooted: one banner in the serial log.
    backend.pause(&id).await.unwrap();
    wait_event(&mut events, &id, EVENT, |k| *k == VmEventKind::Paused).await;
    backend.resume(&id).await.unwrap();
    wait_event(&mut events, &id, EVENT, |k| *k == VmEventKind::Resumed).await;
    assert_eq!(count_in(&serial, BANNER), 1);

    // The tiny guest has no guest agent: QEMU's QGA socket accepts, nobody answers, and the
    // client says so in time instead of hanging.
    let t = std::time::Instant::now();
    let qga = limiquantix_qemu::qga::QgaClient::new(backend.paths(&id).unwrap().qga_socket())
        .with_sync_timeout(Duration::from_millis(500));
    assert!(matches!(
        qga.ping().await,
        Err(limiquantix_qemu::qga::QgaError::AgentUnavailable { .. })
    ));
    assert!(t.elapsed() < Duration::from_secs(5));

    assert_eq!(
        backend.stop(&id, None).await.unwrap(),
        StopOutcome::Graceful
    );
    wait_event(&mut events, &id, EVENT, |k| *k == VmEventKind::Stopped).await;
    assert!(!process::is_qemu_of(pid, &id));
    assert_eq!(count_in(&serial, BANNER), 1);
    backend.delete(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_qemu_is_reported_crashed_live_and_after_a_restart() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let backend = QemuBackend::open(config(tmp.path())).await.unwrap();
    let mut events = backend.subscribe();
    let a = tiny_vm("crash-live");
    let b = tiny_vm("crash-away");
    let c = tiny_vm("off-away");
    for d in [&a, &b, &c] {
        backend
            .define(d.clone().into_valid().unwrap(), DefineExtras::default())
            .await
            .unwrap();
        backend.start(&d.id).await.unwrap();
    }

    // Killed while the backend watches: crashed, with an event.
    let pid = backend.status(&a.id).await.unwrap().pid.unwrap();
    process::signal(pid, Signal::Kill);
    let kind = wait_event(&mut events, &a.id, EVENT, |k| {
        matches!(k, VmEventKind::Crashed { .. })
    })
    .await;
    assert!(matches!(kind, VmEventKind::Crashed { reason } if reason.contains("signal 9")));
    let st = backend.status(&a.id).await.unwrap();
    assert_eq!((st.state, st.pid), (VmState::Crashed, None));
    assert!(st.last_exit.unwrap().contains("unexpectedly"));

    // While no backend runs, b is killed and c's guest powers off by itself.
    for d in [&b, &c] {
        let serial = backend.paths(&d.id).unwrap().serial_log();
        wait_count(&serial, READY, 1, BOOT).await;
    }
    let pid_b = backend.status(&b.id).await.unwrap().pid.unwrap();
    let pid_c = backend.status(&c.id).await.unwrap().pid.unwrap();
    let qmp_c = backend.paths(&c.id).unwrap().qmp_socket();
    drop(events);
    drop(backend);
    tokio::time::sleep(Duration::from_millis(200)).await;
    process::signal(pid_b, Signal::Kill);
    power_button(&qmp_c).await;
    for pid in [pid_b, pid_c] {
        let t = std::time::Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() && t.elapsed() < EVENT {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let backend = QemuBackend::open(config(tmp.path())).await.unwrap();
    assert_eq!(backend.status(&a.id).await.unwrap().state, VmState::Crashed);
    assert_eq!(backend.status(&b.id).await.unwrap().state, VmState::Crashed);
    assert_eq!(backend.status(&c.id).await.unwrap().state, VmState::Stopped);

    // A crashed VM starts again. A guest that cannot see the power button in time (here: still
    // booting) is forced off when the stop timeout passes.
    backend.start(&a.id).await.unwrap();
    assert_eq!(
        backend
            .stop(&a.id, Some(Duration::from_millis(1)))
            .await
            .unwrap(),
        StopOutcome::Forced
    );
    assert_eq!(backend.status(&a.id).await.unwrap().state, VmState::Stopped);
    assert!(matches!(
        backend.qmp(&a.id).await,
        Err(QemuError::NotRunning { .. })
    ));
    for d in [&a, &b, &c] {
        backend.delete(&d.id).await.unwrap();
    }
}

/// The file inserted in CD-ROM `cdrom` according to QMP `query-block`.
async fn inserted(backend: &QemuBackend, id: &VmId, cdrom: &str) -> Option<String> {
    let q = backend.qmp(id).await.unwrap();
    let blocks = q.execute("query-block", None).await.unwrap();
    let dev = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|b| {
            b["qdev"]
                .as_str()
                .is_some_and(|d| d == cdrom || d.ends_with(&format!("/{cdrom}")))
        })
        .unwrap_or_else(|| panic!("no {cdrom} in {blocks}"))
        .clone();
    dev["inserted"]["file"].as_str().map(str::to_owned)
}

/// Presses the power button of a VM no backend watches, over its QMP socket.
async fn power_button(qmp: &Path) {
    let q = limiquantix_qemu::qmp::QmpClient::connect_with_retry(
        qmp,
        Duration::from_secs(10),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    q.execute("system_powerdown", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_bootable_is_refused_and_a_cloud_vm_boots_its_disk_before_the_seed() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let backend = QemuBackend::open(config(tmp.path())).await.unwrap();

    // Only a blank disk: refused at start with the documented error, state unchanged.
    let mut blank = VmDefinition::new(VmId::generate(), "blank", 128);
    blank.console.vnc = false;
    blank.disks.push(disk(
        "disk0",
        DiskSource::Blank {
            size_bytes: 1 << 20,
        },
        DiskFormat::Qcow2,
    ));
    backend
        .define(blank.clone().into_valid().unwrap(), DefineExtras::default())
        .await
        .unwrap();
    match backend.start(&blank.id).await {
        Err(e @ QemuError::Boot(BootError::NothingBootable { .. })) => {
            assert!(e.to_string().contains("nothing to boot"), "{e}");
            assert!(e.to_string().contains("blank"), "{e}");
        }
        other => panic!("expected NothingBootable, got {other:?}"),
    }
    assert_eq!(
        backend.status(&blank.id).await.unwrap().state,
        VmState::Stopped
    );
    backend.delete(&blank.id).await.unwrap();

    // A cloud-image VM: overlay on a backing image plus a seed given at define time.
    let backing = tmp.path().join("cloud.qcow2");
    let out = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&backing)
        .arg("16M")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut cloud = VmDefinition::new(VmId::generate(), "cloud", 128);
    cloud.console.vnc = false;
    cloud.disks.push(disk(
        "disk0",
        DiskSource::Overlay {
            backing: backing.clone(),
            size_bytes: 32 << 20,
        },
        DiskFormat::Qcow2,
    ));
    cloud.cdroms.push(CdromSpec {
        id: "seed".into(),
        path: Some(backend.seed_path(&cloud.id)),
        bootable: false,
        role: CdromRole::Seed,
        boot_index: None,
    });
    let seed = b"not really an ISO, only bytes to store".to_vec();
    backend
        .define(
            cloud.clone().into_valid().unwrap(),
            DefineExtras {
                seed_iso: Some(seed.clone()),
            },
        )
        .await
        .unwrap();
    let paths = backend.paths(&cloud.id).unwrap();
    assert_eq!(std::fs::read(paths.seed_iso()).unwrap(), seed);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(paths.seed_iso())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let stored = backend.get(&cloud.id).unwrap();
    assert_eq!(
        stored.cdroms[0].path.as_deref(),
        Some(paths.seed_iso().as_path())
    );
    assert!(stored.nics.iter().all(|n| n.mac.is_some()));

    let args: Vec<String> = backend
        .command_line(&cloud.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
    let device = |id: &str| {
        args.iter()
            .filter_map(|a| serde_json::from_str::<serde_json::Value>(a).ok())
            .find(|v| v["id"] == id)
            .unwrap_or_else(|| panic!("no -device {id} in {args:?}"))
    };
    let disk_dev = device("disk0");
    let seed_dev = device("seed");
    assert_eq!(disk_dev["bootindex"], 1);
    assert!(
        seed_dev.get("bootindex").is_none(),
        "the seed never boots: {seed_dev}"
    );
    let pos = |id: &str| {
        args.iter()
            .position(|a| a.contains(&format!("\"id\":\"{id}\"")))
            .unwrap()
    };
    assert!(pos("disk0") < pos("seed"), "the disk comes before the seed");

    // Delete removes the overlay and the seed, never the backing image.
    backend.delete(&cloud.id).await.unwrap();
    assert!(!paths.vm_dir.exists());
    assert!(backing.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_define_leaves_nothing_and_stale_staging_is_cleared_at_open() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let backend = QemuBackend::open(config(tmp.path())).await.unwrap();
    let mut def = tiny_vm("broken");
    // The second disk cannot be created: an overlay smaller than its backing image. The first
    // one is already made in staging by then.
    let backing = tmp.path().join("base.qcow2");
    let out = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&backing)
        .arg("16M")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    def.disks.push(disk(
        "ok",
        DiskSource::Blank {
            size_bytes: 1 << 20,
        },
        DiskFormat::Qcow2,
    ));
    def.disks.push(disk(
        "bad",
        DiskSource::Overlay {
            backing,
            size_bytes: 1 << 20,
        },
        DiskFormat::Qcow2,
    ));
    let err = backend
        .define(def.clone().into_valid().unwrap(), DefineExtras::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, QemuError::Storage(ref e) if e.to_string().contains("smaller")),
        "{err}"
    );
    let vms = tmp.path().join("state/vms");
    let left: Vec<_> = std::fs::read_dir(&vms).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(matches!(
        backend.status(&def.id).await,
        Err(QemuError::NotFound { .. })
    ));

    // A disk created in a pool directory is in the pool, and a failed define removes it too.
    let pool = tmp.path().join("pool");
    std::fs::create_dir(&pool).unwrap();
    def.disk_dirs.insert("ok".into(), pool.clone());
    backend
        .define(def.clone().into_valid().unwrap(), DefineExtras::default())
        .await
        .unwrap_err();
    assert_eq!(
        std::fs::read_dir(&pool).unwrap().count(),
        0,
        "the pool is left as it was"
    );
    def.disks.pop();
    backend
        .define(def.clone().into_valid().unwrap(), DefineExtras::default())
        .await
        .unwrap();
    let in_pool = pool.join(format!("{}-disk-0.qcow2", def.id));
    assert!(in_pool.exists(), "the disk is created in its pool");
    let entry = limiquantix_vm::VmBackend::get(&backend, &def.id)
        .await
        .unwrap();
    assert_eq!(entry.disk_files, std::slice::from_ref(&in_pool));
    backend.delete(&def.id).await.unwrap();
    assert!(
        !in_pool.exists(),
        "a disk the backend created goes with the VM"
    );

    // A staging directory from a crashed define is removed by the next open.
    std::fs::create_dir(vms.join(".staging-crashed")).unwrap();
    std::fs::write(vms.join(".staging-crashed/disk-0.qcow2"), b"x").unwrap();
    drop(backend);
    let _backend = QemuBackend::open(config(tmp.path())).await.unwrap();
    assert!(!vms.join(".staging-crashed").exists());
}

/// A disk SeaBIOS cannot boot (no boot sector): the backend's readiness reads SeaBIOS's own
/// words from the serial console (the machine runs with `graphics=off`) and reports the boot
/// failed, instead of waiting forever or falling to a network boot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbootable_disk_is_reported_failed_from_the_firmwares_console() {
    use limiquantix_vm::readiness::{BootFailure, BootPhase};
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let backend = QemuBackend::open(config(tmp.path())).await.unwrap();
    let zeros = tmp.path().join("zeros.img");
    std::fs::write(&zeros, vec![0u8; 1 << 20]).unwrap();
    let mut vm = VmDefinition::new(VmId::generate(), "unbootable", 128);
    vm.console.vnc = false;
    vm.disks.push(disk(
        "disk0",
        DiskSource::Path { path: zeros },
        DiskFormat::Raw,
    ));
    backend
        .define(vm.clone().into_valid().unwrap(), DefineExtras::default())
        .await
        .unwrap();
    backend.start(&vm.id).await.unwrap();

    let deadline = std::time::Instant::now() + BOOT;
    let phase = loop {
        let boot = backend.status(&vm.id).await.unwrap().boot;
        if let Some(p) = boot.as_ref().filter(|p| p.is_terminal()) {
            break p.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no verdict; last phase {boot:?}, serial:\n{}",
            std::fs::read_to_string(backend.paths(&vm.id).unwrap().serial_log())
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    match &phase {
        BootPhase::Failed {
            reason: BootFailure::NothingBootable { message },
        } => assert!(message.contains("No bootable device"), "{phase:?}"),
        other => panic!("expected nothing bootable, got {other:?}"),
    }
    let serial = std::fs::read_to_string(backend.paths(&vm.id).unwrap().serial_log()).unwrap();
    assert!(serial.contains("Booting from Hard Disk"), "{serial}");
    assert!(!serial.contains("iPXE"), "{serial}");
    backend.force_stop(&vm.id).await.unwrap();
    backend.delete(&vm.id).await.unwrap();
}
