//! Day-2 operations on a real guest (the Debian test image, real cloud-init, TCG unless
//! `LQ_TEST_ACCEL` says otherwise), checked from inside the guest through its agent: one boot,
//! several operations.
//!
//! - The root disk grows live by 1 GiB through ResizeVolume as the control plane sends it
//!   (`pool_id: "default"`, the disk's id): the guest's block device has the new size at once,
//!   without a reboot, and the guest keeps running.
//! - A snapshot with memory, then a file deleted and a counting process moved on; the revert
//!   brings the file back and the process continues from the snapshot's count.

mod common;

use common::guest::*;
use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use std::time::{Duration, Instant};

const GIB: u64 = 1 << 30;

/// The guest's counter (a shell loop writing 1, 2, 3, ... to /run/lq-counter every second).
async fn counter(qga: &limiquantix_qemu::qga::QgaClient) -> u64 {
    guest_sh(qga, "cat /run/lq-counter")
        .await
        .trim()
        .parse()
        .expect("a count")
}

/// Snapshot with memory, change the guest, revert: the guest is back at the snapshot's instant.
async fn snapshot_with_memory(daemon: &mut Daemon, id: &str) {
    let qga = inside(daemon, id).await;
    guest_sh(&qga, "echo lq-snap > /root/lq-file && sync").await;
    guest_sh(
        &qga,
        "setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > /run/lq-counter; sleep 1; done' \
         </dev/null >/dev/null 2>&1 &",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c1 = counter(&qga).await;
    drop(qga);
    let mut client = daemon.spawn().await;
    let snap = client
        .create_snapshot(pb::CreateSnapshotRequest {
            vm_id: id.into(),
            name: "with-memory".into(),
            ..Default::default()
        })
        .await
        .expect("CreateSnapshot")
        .into_inner();
    assert!(
        snap.memory && snap.vm_state == pb::PowerState::Running as i32,
        "{snap:?}"
    );
    drop(client);
    let qga = inside(daemon, id).await;
    let c2 = counter(&qga).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    guest_sh(&qga, "rm /root/lq-file && sync").await;
    let c3 = counter(&qga).await;
    assert!(c3 >= c2 + 10, "the counter runs: {c2} then {c3}");
    drop(qga);
    let mut client = daemon.spawn().await;
    client
        .revert_snapshot(pb::RevertSnapshotRequest {
            vm_id: id.into(),
            snapshot_id: snap.snapshot_id.clone(),
            stop_if_running: false,
        })
        .await
        .expect("RevertSnapshot");
    let listed = client
        .list_snapshots(pb::VmIdRequest { vm_id: id.into() })
        .await
        .expect("ListSnapshots")
        .into_inner()
        .snapshots;
    assert!(
        listed
            .iter()
            .any(|s| s.snapshot_id == snap.snapshot_id && s.current)
    );
    drop(client);
    let qga = inside(daemon, id).await;
    let c4 = counter(&qga).await;
    assert_eq!(guest_sh(&qga, "cat /root/lq-file").await.trim(), "lq-snap");
    assert!(
        c4 >= c1 && c4 < c3,
        "the process continues from the snapshot's count: {c1}..{c2} at the snapshot, {c3} \
         before the revert, {c4} after"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(counter(&qga).await > c4, "and keeps counting");
}

/// The guest's view of a block device's size, in bytes.
async fn guest_size(daemon: &mut Daemon, id: &str, dev: &str) -> (u64, NodeClient) {
    let qga = inside(daemon, id).await;
    let size = guest_sh(&qga, &format!("blockdev --getsize64 /dev/{dev}"))
        .await
        .trim()
        .parse()
        .expect("a size");
    drop(qga);
    (size, daemon.spawn().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day2_operations_on_a_running_guest() {
    let _one = BOOTING.lock().await;
    let (mut daemon, mut client) = Daemon::start().await;
    let mut events = subscribe(&mut client).await;
    let id = create_and_start(&mut client, vm_request(&daemon, "day2", None)).await;
    let verdict = daemon_verdict(&daemon, &mut events, &id, Instant::now() + BOOT_LIMIT).await;
    assert_eq!(verdict, "guest boot: ready");
    drop(client);

    // The root disk grows live by 1 GiB.
    let (before, mut client) = guest_size(&mut daemon, &id, "vda").await;
    assert_eq!(before, 2 * GIB);
    client
        .resize_volume(pb::ResizeVolumeRequest {
            pool_id: "default".into(),
            volume_id: "disk0".into(),
            new_size_bytes: before + GIB,
        })
        .await
        .expect("ResizeVolume");
    drop(client);
    let (after, mut client) = guest_size(&mut daemon, &id, "vda").await;
    assert_eq!(
        after,
        before + GIB,
        "the guest sees the new size without a reboot"
    );
    let status = client
        .get_vm_status(pb::VmIdRequest { vm_id: id.clone() })
        .await
        .expect("GetVMStatus")
        .into_inner();
    assert_eq!(status.state, pb::PowerState::Running as i32);
    drop(client);

    snapshot_with_memory(&mut daemon, &id).await;
}
