//! Disk and NIC hot-plug through the QEMU backend against real QEMU (TCG) and the tiny guest,
//! one boot for every check: a disk attached while stopped, a blank virtio disk and a SCSI
//! disk hot-plugged (QMP `query-block` and `query-pci` show them on a spare root port), a
//! user-mode NIC attached and detached, SATA, the boot disk and a CD-ROM refused, detaches
//! that leave QEMU and the definition without the device, a VM restart and a backend restart
//! that keep what was attached.

mod common;

use std::time::{Duration, Instant};

use common::{READY, SERIAL, config, tiny_vm, wait_count};
use limiquantix_qemu::backend::{DefineExtras, QemuBackend};
use limiquantix_vm::hotplug::DiskPlacement;
use limiquantix_vm::model::{
    CdromRole, CdromSpec, DiskBus, DiskFormat, DiskSource, DiskSpec, NicSpec, VmId,
};
use limiquantix_vm::{BackendError, VmBackend};
use serde_json::Value;

const MIB: u64 = 1 << 20;
const BOOT: Duration = Duration::from_secs(120);

fn blank(id: &str, bus: DiskBus) -> DiskSpec {
    DiskSpec {
        id: id.into(),
        source: DiskSource::Blank {
            size_bytes: 64 * MIB,
        },
        bus,
        format: DiskFormat::Qcow2,
        readonly: false,
        boot_index: None,
        limits: None,
    }
}

/// The devices `query-block` lists with a medium: their device ids.
async fn block_devices(b: &QemuBackend, id: &VmId) -> Vec<String> {
    let blocks = b.qmp(id).await.unwrap().execute("query-block", None).await;
    blocks
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d.get("inserted").is_some())
        .filter_map(|d| d["qdev"].as_str())
        .map(|q| q.trim_start_matches("/machine/peripheral/"))
        .map(|q| q.split('/').next().unwrap().to_string())
        .collect()
}

/// The spare root port device `dev` sits behind, from `query-pci`.
async fn port_of(b: &QemuBackend, id: &VmId, dev: &str) -> Option<String> {
    let pci = b.qmp(id).await.unwrap().execute("query-pci", None).await;
    let pci = pci.unwrap();
    for d in pci[0]["devices"].as_array().unwrap() {
        let behind = d.pointer("/pci_bridge/devices").and_then(Value::as_array);
        if behind.is_some_and(|v| v.iter().any(|x| x["qdev_id"] == dev)) {
            return d["qdev_id"].as_str().map(String::from);
        }
    }
    None
}

fn ids(b: &QemuBackend, id: &VmId) -> Vec<String> {
    let def = b.get(id).unwrap();
    def.disks.iter().map(|d| d.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disks_and_nics_hot_plug_and_unplug_and_persist() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.unplug_timeout = Duration::from_secs(60);
    let backend = QemuBackend::open(cfg.clone()).await.unwrap();
    let mut def = tiny_vm("hotplug");
    def.disks.push(blank("disk0", DiskBus::Virtio));
    def.cdroms.push(CdromSpec {
        id: "cd0".into(),
        path: None,
        bootable: false,
        role: CdromRole::Media,
        boot_index: None,
    });
    let id = def.id.clone();
    backend
        .define(def.into_valid().unwrap(), DefineExtras::default())
        .await
        .unwrap();
    let paths = backend.paths(&id).unwrap();
    let none = DiskPlacement::default();

    // Stopped: the definition and the file.
    let d = VmBackend::attach_disk(&backend, &id, blank("cold1", DiskBus::Virtio), none.clone());
    d.await.unwrap();
    assert!(paths.vm_dir.join("cold1.qcow2").exists());
    assert_eq!(ids(&backend, &id), ["disk0", "cold1"]);

    backend.start(&id).await.unwrap();
    wait_count(&paths.serial_log(), READY, 1, BOOT).await;

    // A blank virtio disk and a SCSI disk, live.
    let t = Instant::now();
    let hot = blank("hot1", DiskBus::Virtio);
    VmBackend::attach_disk(&backend, &id, hot, none.clone())
        .await
        .unwrap();
    eprintln!("attach_disk (blank qcow2, virtio) took {:?}", t.elapsed());
    let scsi = blank("hot2", DiskBus::Scsi);
    VmBackend::attach_disk(&backend, &id, scsi, none.clone())
        .await
        .unwrap();
    let devs = block_devices(&backend, &id).await;
    for want in ["disk0", "cold1", "hot1", "hot2"] {
        assert!(devs.iter().any(|d| d == want), "{want} not in {devs:?}");
    }
    assert!(
        port_of(&backend, &id, "hot1")
            .await
            .unwrap()
            .starts_with("hp")
    );
    assert_eq!(ids(&backend, &id), ["disk0", "cold1", "hot1", "hot2"]);

    // Refusals.
    let sata = blank("sata1", DiskBus::Sata);
    let e = VmBackend::attach_disk(&backend, &id, sata, none.clone()).await;
    assert!(
        matches!(&e, Err(BackendError::Precondition(m)) if m.contains("hot-plug")),
        "{e:?}"
    );
    assert!(!paths.vm_dir.join("sata1.qcow2").exists());
    for (dev, why) in [("disk0", "boot disk"), ("cd0", "CD-ROM")] {
        let e = VmBackend::detach_disk(&backend, &id, dev, false).await;
        assert!(
            matches!(&e, Err(BackendError::Precondition(m)) if m.contains(why)),
            "{e:?}"
        );
    }

    // A user-mode NIC.
    let nic = NicSpec {
        id: "nic1".into(),
        mac: None,
        model: Default::default(),
        network: Default::default(),
    };
    let got = VmBackend::attach_nic(&backend, &id, nic, None)
        .await
        .unwrap();
    assert!(got.mac.is_some());
    assert!(port_of(&backend, &id, "nic1").await.is_some());
    VmBackend::detach_nic(&backend, &id, "nic1").await.unwrap();
    assert!(port_of(&backend, &id, "nic1").await.is_none());
    assert!(backend.get(&id).unwrap().nics.is_empty());

    // SCSI detach; the file stays (delete_file false).
    VmBackend::detach_disk(&backend, &id, "hot2", false)
        .await
        .unwrap();
    assert!(!block_devices(&backend, &id).await.contains(&"hot2".into()));
    assert!(paths.vm_dir.join("hot2.qcow2").exists());

    // A VM restart keeps what was attached.
    backend.force_stop(&id).await.unwrap();
    backend.start(&id).await.unwrap();
    wait_count(&paths.serial_log(), READY, 2, BOOT).await;
    let devs = block_devices(&backend, &id).await;
    assert!(
        devs.contains(&"hot1".into()) && devs.contains(&"cold1".into()),
        "{devs:?}"
    );

    // Detach with delete_file: gone from QEMU, the definition and the disk.
    let t = Instant::now();
    VmBackend::detach_disk(&backend, &id, "hot1", true)
        .await
        .unwrap();
    eprintln!(
        "detach_disk (virtio, guest releases it) took {:?}",
        t.elapsed()
    );
    assert!(!block_devices(&backend, &id).await.contains(&"hot1".into()));
    assert!(!paths.vm_dir.join("hot1.qcow2").exists());
    assert_eq!(ids(&backend, &id), ["disk0", "cold1"]);

    // A backend restart reads the same definition and leaves the devices alone.
    drop(backend);
    let backend = QemuBackend::open(cfg).await.unwrap();
    assert_eq!(ids(&backend, &id), ["disk0", "cold1"]);
    let devs = block_devices(&backend, &id).await;
    assert!(
        devs.contains(&"cold1".into()) && !devs.contains(&"hot1".into()),
        "{devs:?}"
    );
    backend.force_stop(&id).await.unwrap();
}
