//! Crash safety of hot-plug: the daemon dies (`LQ_FAULT_INJECT` aborts it, as a kill -9 would)
//! at every crash point of AttachDisk, DetachDisk, AttachNIC and DetachNIC on a running tiny
//! VM, is started again (adoption reconciles QEMU with `vm.json`), and the definition and the
//! running QEMU agree. QEMU's side is read over its own QMP socket while the daemon is stopped
//! (QEMU takes one QMP client): the disk and NIC devices (`qom-list /machine/peripheral`), the
//! disks' block nodes (`query-named-block-nodes`) and the netdevs (`info network`). The caller
//! never got an answer, so it retries: the retry succeeds, and a second detach is NOT_FOUND.
//! One boot per operation: the points run one after the other on the same VM.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Node, QEMU, aborted, cloud_vm, eventually, serial_log};
use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use limiquantix_qemu::paths::RuntimePaths;
use limiquantix_qemu::qmp::QmpClient;
use limiquantix_vm::model::VmId;
use serde_json::{Value, json};
use tonic::Code;

const ID: &str = "3c2b1a09-8f7e-4d6c-9b5a-493827160f5e";
const READY: &str = "LQ-TINY-GUEST READY";
const FAULT: &str = "LQ_FAULT_INJECT";
const DISK_DRIVERS: [&str; 2] = ["virtio-blk-pci", "scsi-hd"];
const NIC_DRIVERS: [&str; 3] = ["virtio-net-pci", "e1000", "rtl8139"];

type Answer = Result<tonic::Response<()>, tonic::Status>;

/// Device ids on one side: the definition's or QEMU's.
#[derive(Debug, Default, PartialEq, Eq)]
struct Devices {
    /// Disk devices (virtio-blk, SCSI).
    disks: BTreeSet<String>,
    /// NIC devices.
    nics: BTreeSet<String>,
}

fn paths(node: &Node) -> RuntimePaths {
    RuntimePaths::new(&node.state, &node.run, &VmId::parse(ID).unwrap())
}

/// The definition the daemon saved: its disks and NICs, and its CD-ROMs.
fn definition(node: &Node) -> (Devices, BTreeSet<String>) {
    let text = std::fs::read_to_string(paths(node).vm_json()).unwrap();
    let def: Value = serde_json::from_str(&text).unwrap();
    let ids = |key: &str| -> BTreeSet<String> {
        def[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect()
    };
    let devices = Devices {
        disks: ids("disks"),
        nics: ids("nics"),
    };
    (devices, ids("cdroms"))
}

/// QEMU's side, over its QMP socket (free while the daemon is stopped): its disk and NIC
/// devices, the disks its block nodes belong to (`<id>-file`, `<id>-fmt`, ...) and the NICs its
/// netdevs belong to (`<id>-net`).
async fn qemu_side(node: &Node) -> (Devices, BTreeSet<String>, BTreeSet<String>) {
    let socket = paths(node).qmp_socket();
    let q = QmpClient::connect(&socket, Duration::from_secs(10)).await;
    let q = q.expect("QEMU's QMP socket, free while the daemon is stopped");
    let found = query(&q).await;
    drop(q);
    // QEMU serves its next client (the daemon) once this one is gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    found
}

async fn query(q: &QmpClient) -> (Devices, BTreeSet<String>, BTreeSet<String>) {
    let arg = json!({ "path": "/machine/peripheral" });
    let list = q.execute("qom-list", Some(arg)).await.unwrap();
    let mut qemu = Devices::default();
    for p in list.as_array().unwrap() {
        let name = p["name"].as_str().unwrap().to_string();
        let ty = p["type"].as_str().unwrap();
        let driver = ty.trim_start_matches("child<").trim_end_matches('>');
        if DISK_DRIVERS.contains(&driver) {
            qemu.disks.insert(name);
        } else if NIC_DRIVERS.contains(&driver) {
            qemu.nics.insert(name);
        }
    }
    let arg = json!({ "flat": true });
    let nodes = q.execute("query-named-block-nodes", Some(arg)).await;
    let node_owners = nodes
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["node-name"].as_str()?.rsplit_once('-'))
        .map(|(id, _)| id.to_string())
        .filter(|id| !id.starts_with("fw"))
        .collect();
    let arg = json!({ "command-line": "info network" });
    let info = q.execute("human-monitor-command", Some(arg)).await.unwrap();
    let netdevs = info
        .as_str()
        .unwrap()
        .lines()
        .filter_map(|l| l.trim_start_matches([' ', '\\']).split_once(':'))
        .filter_map(|(name, _)| name.strip_suffix("-net"))
        .map(str::to_string)
        .collect();
    (qemu, node_owners, netdevs)
}

/// With the daemon running: GetVMStatus's disks and the saved definition are the same; then the
/// daemon is stopped (QEMU runs on) and QEMU's devices, block nodes and netdevs match the
/// definition. Returns the definition; the daemon stays stopped.
async fn stopped_and_agreeing(node: &mut Node) -> Devices {
    let mut c = node.client().await;
    let status = c.get_vm_status(id()).await.unwrap().into_inner();
    assert_eq!(
        status.state,
        pb::PowerState::Running as i32,
        "the guest ran on"
    );
    node.terminate();
    let (def, cdroms) = definition(node);
    let listed: BTreeSet<String> = status.disks.into_iter().map(|d| d.id).collect();
    assert_eq!(listed, def.disks, "GetVMStatus and vm.json");
    let (qemu, mut node_owners, netdevs) = qemu_side(node).await;
    assert_eq!(qemu, def, "QEMU's devices and vm.json");
    node_owners.retain(|o| !cdroms.contains(o));
    assert_eq!(node_owners, def.disks, "QEMU's block nodes and vm.json");
    assert_eq!(netdevs, def.nics, "QEMU's netdevs and vm.json");
    def
}

fn id() -> pb::VmIdRequest {
    pb::VmIdRequest { vm_id: ID.into() }
}

/// A fresh node with the tiny VM running and its guest up (it answers unplugs); the daemon is
/// stopped and QEMU agrees with the definition.
async fn booted() -> Node {
    let mut node = Node::new();
    let image = node.tiny_image();
    node.start();
    let mut c = node.client().await;
    c.create_vm(cloud_vm(ID, "hotplug", &image)).await.unwrap();
    c.start_vm(id()).await.unwrap();
    assert!(
        eventually(Duration::from_secs(180), async || serial_log(&mut c, ID)
            .await
            .contains(READY))
        .await,
        "the guest booted: {}",
        serial_log(&mut c, ID).await
    );
    let def = stopped_and_agreeing(&mut node).await;
    assert_eq!(def.disks.len(), 1, "{def:?}");
    node
}

/// Starts the daemon with `point` armed and a client.
async fn armed(node: &mut Node, point: &str) -> NodeClient {
    node.start_with(&[(FAULT, point)]);
    node.client().await
}

/// The call got no answer because the daemon aborted at the point; the daemon comes back
/// (adopting and reconciling the VM) and agrees with QEMU. Returns the definition; the daemon
/// stays stopped.
async fn after_the_crash(node: &mut Node, point: &str, answer: Answer) -> Devices {
    restart_after_abort(node, point, answer);
    stopped_and_agreeing(node).await
}

/// What adoption logs when it repairs what the daemon killed at `point` left apart (nothing
/// to repair in QEMU for a crash before QEMU was changed).
fn repair(point: &str) -> Option<&'static str> {
    Some(match point {
        "attachdisk:after-blockdev" => "removing block nodes of no disk",
        "attachdisk:after-device" | "attachnic:after-device" => {
            "unplugging a device the definition does not have"
        }
        p if p.starts_with("detachdisk:") => "plugging a disk of the definition QEMU lost",
        "detachnic:after-device-del" => "plugging a NIC of the definition QEMU lost",
        _ => return None,
    })
}

/// The call got no answer because the daemon aborted at `point`; the daemon is started again
/// and its adoption repaired QEMU (the log says so) where the crash left it apart.
fn restart_after_abort(node: &mut Node, point: &str, answer: Answer) {
    assert!(answer.is_err(), "{point}: no answer: {answer:?}");
    let exit = node.wait_exit();
    assert!(
        aborted(exit),
        "{point}: aborted: {exit:?}\n{}",
        node.log_text()
    );
    let before = node.log_text().len();
    node.start();
    if let Some(what) = repair(point) {
        let log = node.log_text();
        assert!(
            log[before..].contains(what),
            "{point}: {what:?}:\n{}",
            &log[before..]
        );
    }
}

/// The daemon started again, and a client.
async fn restarted(node: &mut Node) -> NodeClient {
    node.start();
    node.client().await
}

async fn attach_disk(c: &mut NodeClient, disk: &str) -> Answer {
    let disk = pb::DiskSpec {
        id: disk.into(),
        size_gib: 1,
        ..Default::default()
    };
    let vm_id = ID.into();
    let req = pb::AttachDiskRequest {
        vm_id,
        disk: Some(disk),
    };
    c.attach_disk(req).await
}

async fn detach_disk(c: &mut NodeClient, disk: &str) -> Answer {
    let (vm_id, disk_id) = (ID.into(), disk.into());
    let req = pb::DetachDiskRequest {
        vm_id,
        disk_id,
        delete_file: true,
    };
    c.detach_disk(req).await
}

async fn attach_nic(c: &mut NodeClient, nic: &str) -> Answer {
    let nic = pb::NicSpec {
        id: nic.into(),
        ..Default::default()
    };
    let vm_id = ID.into();
    c.attach_nic(pb::AttachNicRequest {
        vm_id,
        nic: Some(nic),
    })
    .await
}

async fn detach_nic(c: &mut NodeClient, nic: &str) -> Answer {
    let (vm_id, nic_id) = (ID.into(), nic.into());
    c.detach_nic(pb::DetachNicRequest { vm_id, nic_id }).await
}

fn code(answer: Answer) -> Code {
    answer.expect_err("an error").code()
}

#[tokio::test]
async fn a_daemon_killed_inside_attach_disk_leaves_qemu_and_definition_agreeing() {
    let _one = QEMU.lock().await;
    let mut node = booted().await;
    let points = ["after-file", "after-blockdev", "after-device"];
    for (n, point) in points.iter().enumerate() {
        let point = format!("attachdisk:{point}");
        let disk = format!("data{n}");
        let mut c = armed(&mut node, &point).await;
        let answer = attach_disk(&mut c, &disk).await;
        let def = after_the_crash(&mut node, &point, answer).await;
        // The attach never answered: undone, whatever QEMU had of it.
        assert!(!def.disks.contains(&disk), "{point}: {def:?}");
        let file = paths(&node).vm_dir.join(format!("{disk}.qcow2"));
        let mut c = restarted(&mut node).await;
        attach_disk(&mut c, &disk)
            .await
            .expect("the retry attaches");
        assert!(file.exists(), "{point}: the retry made the file");
        let again = attach_disk(&mut c, &disk).await;
        assert_eq!(code(again), Code::InvalidArgument, "{point}: taken id");
        let def = stopped_and_agreeing(&mut node).await;
        assert!(def.disks.contains(&disk), "{point}: {def:?}");
    }
}

#[tokio::test]
async fn a_daemon_killed_inside_detach_disk_leaves_qemu_and_definition_agreeing() {
    let _one = QEMU.lock().await;
    let mut node = booted().await;
    let points = ["after-device-del", "after-blockdev-del"];
    let mut c = restarted(&mut node).await;
    for n in 0..points.len() {
        attach_disk(&mut c, &format!("data{n}")).await.unwrap();
    }
    stopped_and_agreeing(&mut node).await;
    for (n, point) in points.iter().enumerate() {
        let point = format!("detachdisk:{point}");
        let disk = format!("data{n}");
        let mut c = armed(&mut node, &point).await;
        let answer = detach_disk(&mut c, &disk).await;
        let def = after_the_crash(&mut node, &point, answer).await;
        // The detach never answered: the definition keeps the disk, and QEMU has it again.
        assert!(def.disks.contains(&disk), "{point}: {def:?}");
        let file = paths(&node).vm_dir.join(format!("{disk}.qcow2"));
        assert!(
            file.exists(),
            "{point}: the file stays until a detach succeeds"
        );
        let mut c = restarted(&mut node).await;
        detach_disk(&mut c, &disk)
            .await
            .expect("the retry detaches");
        assert!(!file.exists(), "{point}: delete_file honoured by the retry");
        let again = detach_disk(&mut c, &disk).await;
        assert_eq!(code(again), Code::NotFound, "{point}: detached already");
        let def = stopped_and_agreeing(&mut node).await;
        assert!(!def.disks.contains(&disk), "{point}: {def:?}");
    }
}

#[tokio::test]
async fn a_daemon_killed_inside_attach_nic_leaves_qemu_and_definition_agreeing() {
    let _one = QEMU.lock().await;
    let mut node = booted().await;
    for (n, point) in ["after-netdev", "after-device"].iter().enumerate() {
        let point = format!("attachnic:{point}");
        let nic = format!("nic{}", n + 1);
        let mut c = armed(&mut node, &point).await;
        let answer = attach_nic(&mut c, &nic).await;
        after_the_crash_nic(&mut node, &point, answer, &nic).await;
        let mut c = restarted(&mut node).await;
        attach_nic(&mut c, &nic).await.expect("the retry attaches");
        let again = attach_nic(&mut c, &nic).await;
        assert_eq!(code(again), Code::InvalidArgument, "{point}: taken id");
        let def = stopped_and_agreeing(&mut node).await;
        assert!(def.nics.contains(&nic), "{point}: {def:?}");
    }
}

/// Like [`after_the_crash`] for an attach of NIC `nic`: undone, QEMU's devices agree; a netdev
/// added by an attach killed before its `device_add` stays in QEMU, used by no device, until
/// the retry replaces it (reconciliation follows devices), and is the only extra netdev.
async fn after_the_crash_nic(node: &mut Node, point: &str, answer: Answer, nic: &str) {
    restart_after_abort(node, point, answer);
    let mut c = node.client().await;
    let status = c.get_vm_status(id()).await.unwrap().into_inner();
    assert_eq!(status.state, pb::PowerState::Running as i32);
    node.terminate();
    let (def, _) = definition(node);
    assert!(!def.nics.contains(nic), "{point}: undone: {def:?}");
    let (qemu, _, mut netdevs) = qemu_side(node).await;
    assert_eq!(qemu, def, "{point}: QEMU's devices and vm.json");
    if point.ends_with("after-netdev") {
        assert!(
            netdevs.remove(nic),
            "{point}: the orphan netdev {netdevs:?}"
        );
    }
    assert_eq!(netdevs, def.nics, "{point}: QEMU's netdevs and vm.json");
}

#[tokio::test]
async fn a_daemon_killed_inside_detach_nic_leaves_qemu_and_definition_agreeing() {
    let _one = QEMU.lock().await;
    let mut node = booted().await;
    let mut c = restarted(&mut node).await;
    attach_nic(&mut c, "nic1").await.unwrap();
    stopped_and_agreeing(&mut node).await;
    let point = "detachnic:after-device-del";
    let mut c = armed(&mut node, point).await;
    let answer = detach_nic(&mut c, "nic1").await;
    let def = after_the_crash(&mut node, point, answer).await;
    // The detach never answered: the definition keeps the NIC, and QEMU has it again.
    assert!(def.nics.contains("nic1"), "{def:?}");
    let mut c = restarted(&mut node).await;
    detach_nic(&mut c, "nic1")
        .await
        .expect("the retry detaches");
    let again = detach_nic(&mut c, "nic1").await;
    assert_eq!(code(again), Code::NotFound, "detached already");
    let def = stopped_and_agreeing(&mut node).await;
    assert_eq!(def.nics, BTreeSet::from(["nic0".to_string()]));
}
