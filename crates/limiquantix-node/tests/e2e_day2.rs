//! Day-2 operations on a real guest (the Debian test image, real cloud-init, TCG unless
//! `LQ_TEST_ACCEL` says otherwise), checked from inside the guest through its agent: one VM,
//! booted three times (created, then twice around a snapshot of the stopped VM).
//!
//! - The root disk grows live by 1 GiB through ResizeVolume as the control plane sends it
//!   (`pool_id: "default"`, the disk's id): the guest's block device has the new size at once,
//!   without a reboot, and the guest keeps running.
//! - A snapshot with memory, then a file deleted and a counting process moved on; the revert
//!   brings the file back and the process continues from the snapshot's count.
//! - A 1 GiB disk hot-plugged as the control plane sends it (`disk-<n>`, size, no path): the
//!   guest's `lsblk` shows it; it is formatted, written and detached: gone from the guest. A NIC
//!   hot-plugged with a MAC: the guest has an interface with that MAC.
//! - The VM stopped, a disk-only snapshot taken, started again: the state as persisted (the NIC
//!   there, the detached disk not); a file written after the snapshot is gone after the revert.

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
    let mut client = connect(daemon).await;
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
    let mut client = connect(daemon).await;
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

/// A client of the daemon, started afresh (the one before, if any, stopped first: the guest
/// agent's one connection goes back and forth between the daemon and the test).
async fn connect(daemon: &mut Daemon) -> NodeClient {
    daemon.stop();
    daemon.spawn().await
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
    (size, connect(daemon).await)
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
    hot_plug(&mut daemon, &id).await;
    disk_only_snapshot_and_restarts(&mut daemon, &id).await;
}

const NIC_MAC: &str = "52:54:00:4c:51:01";

/// Polls `script` in the guest until its output contains `want`; the time it took.
async fn until_guest_shows(
    qga: &limiquantix_qemu::qga::QgaClient,
    script: &str,
    want: &str,
) -> Duration {
    let t = Instant::now();
    loop {
        if guest_sh(qga, script).await.contains(want) {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the guest never showed {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// AttachDisk as the control plane sends it, the guest uses the disk, DetachDisk; AttachNIC.
async fn hot_plug(daemon: &mut Daemon, id: &str) {
    let mut client = connect(daemon).await;
    client
        .attach_disk(pb::AttachDiskRequest {
            vm_id: id.into(),
            disk: Some(pb::DiskSpec {
                id: "disk-1764892800000000000".into(),
                size_gib: 1,
                ..Default::default()
            }),
        })
        .await
        .expect("AttachDisk");
    client
        .attach_nic(pb::AttachNicRequest {
            vm_id: id.into(),
            nic: Some(pb::NicSpec {
                id: "nic-1764892800000000000".into(),
                mac_address: NIC_MAC.into(),
                ..Default::default()
            }),
        })
        .await
        .expect("AttachNIC");
    drop(client);
    let qga = inside(daemon, id).await;
    let seen = until_guest_shows(
        &qga,
        "lsblk -dnbo NAME,SIZE | awk '{print $1, $2}'",
        "vdb 1073741824",
    )
    .await;
    println!("the hot-plugged disk is in the guest's lsblk {seen:?} after the agent came back");
    guest_sh(
        &qga,
        "mkfs.ext4 -q /dev/vdb && mkdir -p /mnt/hot && mount /dev/vdb /mnt/hot && \
         echo hot > /mnt/hot/file && sync && cat /mnt/hot/file && umount /mnt/hot",
    )
    .await;
    until_guest_shows(&qga, "ip -o link", NIC_MAC).await;
    drop(qga);
    let mut client = connect(daemon).await;
    client
        .detach_disk(pb::DetachDiskRequest {
            vm_id: id.into(),
            disk_id: "disk-1764892800000000000".into(),
            delete_file: true,
        })
        .await
        .expect("DetachDisk");
    drop(client);
    let qga = inside(daemon, id).await;
    let disks = guest_sh(&qga, "lsblk -dnbo NAME,SIZE | awk '{print $1, $2}'").await;
    assert!(
        !disks.contains("vdb"),
        "the detached disk is gone from the guest: {disks}"
    );
}

/// Starts the stopped VM and waits for the daemon's verdict: ready.
async fn start_ready(daemon: &Daemon, mut client: NodeClient, id: &str) -> NodeClient {
    let mut events = subscribe(&mut client).await;
    client
        .start_vm(pb::VmIdRequest { vm_id: id.into() })
        .await
        .expect("StartVM");
    let verdict = daemon_verdict(daemon, &mut events, id, Instant::now() + BOOT_LIMIT).await;
    assert_eq!(verdict, "guest boot: ready");
    client
}

/// A clean shutdown, waited for.
async fn stop_vm(client: &mut NodeClient, id: &str) {
    client
        .stop_vm(pb::StopVmRequest {
            vm_id: id.into(),
            ..Default::default()
        })
        .await
        .expect("StopVM");
    wait_stopped(client, id).await;
}

async fn wait_stopped(client: &mut NodeClient, id: &str) {
    let t = Instant::now();
    loop {
        let s = client
            .get_vm_status(pb::VmIdRequest { vm_id: id.into() })
            .await
            .expect("GetVMStatus")
            .into_inner();
        if s.state == pb::PowerState::Stopped as i32 {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "the VM did not stop: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The VM stopped, a disk-only snapshot of it; started again: the state as persisted (the
/// attached NIC there, the detached disk not); a file written, stopped, reverted, started: the
/// file is gone.
async fn disk_only_snapshot_and_restarts(daemon: &mut Daemon, id: &str) {
    let mut client = connect(daemon).await;
    stop_vm(&mut client, id).await;
    let snap = client
        .create_snapshot(pb::CreateSnapshotRequest {
            vm_id: id.into(),
            name: "cold".into(),
            ..Default::default()
        })
        .await
        .expect("CreateSnapshot of a stopped VM")
        .into_inner();
    assert!(
        !snap.memory && snap.vm_state == pb::PowerState::Stopped as i32,
        "{snap:?}"
    );
    drop(start_ready(daemon, client, id).await);
    let qga = inside(daemon, id).await;
    let links = guest_sh(&qga, "ip -o link").await;
    assert!(
        links.contains(NIC_MAC),
        "the attached NIC is there after a restart: {links}"
    );
    let disks = guest_sh(&qga, "lsblk -dnbo NAME,SIZE | awk '{print $1, $2}'").await;
    assert!(
        !disks.contains("1073741824"),
        "the detached disk is not: {disks}"
    );
    guest_sh(&qga, "echo after > /root/lq-after && sync").await;
    drop(qga);
    let mut client = connect(daemon).await;
    stop_vm(&mut client, id).await;
    client
        .revert_snapshot(pb::RevertSnapshotRequest {
            vm_id: id.into(),
            snapshot_id: snap.snapshot_id,
            stop_if_running: false,
        })
        .await
        .expect("RevertSnapshot of a disk-only snapshot");
    drop(start_ready(daemon, client, id).await);
    let qga = inside(daemon, id).await;
    let after = guest_sh(
        &qga,
        "test -e /root/lq-after && echo present || echo absent",
    )
    .await;
    assert_eq!(after.trim(), "absent", "the disk went back to the snapshot");
}
