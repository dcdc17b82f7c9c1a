//! Crash safety of snapshots: the daemon dies (`LQ_FAULT_INJECT` aborts it) inside
//! CreateSnapshot, RevertSnapshot and DeleteSnapshot of a running VM, is started again, and the
//! snapshot list and the snapshot tags in the VM's disk agree: a snapshot is either complete and
//! listed or gone from both, never half-made and listed.

mod common;

use common::{Node, QEMU, aborted, cloud_vm};
use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use limiquantix_storage::volume::read_snapshot_names;

const ID: &str = "6e5d4c3b-2a1f-4e0d-9c8b-7a6958473625";

fn id() -> pb::VmIdRequest {
    pb::VmIdRequest { vm_id: ID.into() }
}

async fn snapshot(c: &mut NodeClient, name: &str) -> Result<pb::SnapshotResponse, tonic::Status> {
    c.create_snapshot(pb::CreateSnapshotRequest {
        vm_id: ID.into(),
        name: name.into(),
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

/// The listed snapshot ids and the tags in the VM's disk.
async fn listed_and_tags(node: &Node, c: &mut NodeClient) -> (Vec<String>, Vec<String>) {
    let listed = c.list_snapshots(id()).await.unwrap().into_inner().snapshots;
    let disk = node.state.join("vms").join(ID).join("disk-0.qcow2");
    let tags = read_snapshot_names(&disk).unwrap();
    (listed.into_iter().map(|s| s.snapshot_id).collect(), tags)
}

/// A running tiny VM with snapshot `s1`, then the daemon restarted with `point` armed.
async fn armed(point: &str) -> (Node, NodeClient, String) {
    let mut node = Node::new();
    let image = node.tiny_image();
    node.start();
    let mut c = node.client().await;
    c.create_vm(cloud_vm(ID, "snappy", &image)).await.unwrap();
    c.start_vm(id()).await.unwrap();
    let s1 = snapshot(&mut c, "s1").await.unwrap().snapshot_id;
    node.terminate();
    node.start_with(&[("LQ_FAULT_INJECT", point)]);
    let c = node.client().await;
    (node, c, s1)
}

/// The daemon died at the point; it comes back and the list and the disk agree.
async fn after_the_crash(node: &mut Node) -> (NodeClient, Vec<String>, Vec<String>) {
    assert!(aborted(node.wait_exit()), "the daemon aborted at the point");
    node.start();
    let mut c = node.client().await;
    let (listed, tags) = listed_and_tags(node, &mut c).await;
    let mut sorted = tags.clone();
    sorted.sort();
    let mut l = listed.clone();
    l.sort();
    assert_eq!(l, sorted, "the list and the disk's tags agree");
    let status = c.get_vm_status(id()).await.unwrap().into_inner();
    assert_eq!(
        status.state,
        pb::PowerState::Running as i32,
        "the guest ran on"
    );
    (c, listed, tags)
}

#[tokio::test]
async fn a_daemon_killed_inside_a_snapshot_operation_leaves_list_and_disk_agreeing() {
    let _one = QEMU.lock().await;
    // Killed before the snapshot was taken: it is not there, and a new one can be taken.
    let (mut node, mut c, s1) = armed("snapshot:create-after-begin").await;
    assert!(snapshot(&mut c, "s2").await.is_err());
    let (mut c, listed, _) = after_the_crash(&mut node).await;
    assert_eq!(listed, std::slice::from_ref(&s1));
    snapshot(&mut c, "s2")
        .await
        .expect("the name is free again");
    node.terminate();

    // Killed after the disks hold it, before it was recorded: it is completed and listed.
    let (mut node, mut c, s1) = armed("snapshot:create-after-take").await;
    assert!(snapshot(&mut c, "s2").await.is_err());
    let (_, listed, _) = after_the_crash(&mut node).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0], s1);
    node.terminate();

    // Killed inside a revert and inside a delete: the list and the disk still agree.
    let (mut node, mut c, s1) = armed("snapshot:revert-after-begin").await;
    let r = c
        .revert_snapshot(pb::RevertSnapshotRequest {
            vm_id: ID.into(),
            snapshot_id: s1.clone(),
            stop_if_running: false,
        })
        .await;
    assert!(r.is_err());
    let (_, listed, _) = after_the_crash(&mut node).await;
    assert_eq!(listed, std::slice::from_ref(&s1));
    node.terminate();

    let (mut node, mut c, s1) = armed("snapshot:delete-after-take").await;
    let r = c
        .delete_snapshot(pb::DeleteSnapshotRequest {
            vm_id: ID.into(),
            snapshot_id: s1.clone(),
        })
        .await;
    assert!(r.is_err());
    let (mut c, listed, tags) = after_the_crash(&mut node).await;
    assert!(
        listed.is_empty() && tags.is_empty(),
        "the delete is finished"
    );
    c.force_stop_vm(id()).await.unwrap();
}
