//! Day-2 operations on a real guest (the Debian test image, real cloud-init, TCG unless
//! `LQ_TEST_ACCEL` says otherwise), checked from inside the guest through its agent: one boot,
//! several operations.
//!
//! - The root disk grows live by 1 GiB through ResizeVolume as the control plane sends it
//!   (`pool_id: "default"`, the disk's id): the guest's block device has the new size at once,
//!   without a reboot, and the guest keeps running.

mod common;

use common::guest::*;
use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use std::time::Instant;

const GIB: u64 = 1 << 30;

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
}
