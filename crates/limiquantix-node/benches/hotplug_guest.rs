//! The time from AttachDisk to the disk visible in a real guest, and from DetachDisk to it
//! gone: the Debian test image booted through the daemon (TCG unless `LQ_TEST_ACCEL` says
//! otherwise), the guest watched through the daemon's ExecuteInGuest (`lsblk` every 50 ms).
//!
//! Run: `cargo bench -p limiquantix-node --bench hotplug_guest` (`LQ_BENCH_N` rounds, default
//! 5; needs the test image, `LQ_TEST_GUEST_IMAGE`, built by the script when unset). Not run by
//! `cargo test`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::guest::*;
use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use std::time::{Duration, Instant};

/// Polls `lsblk` in the guest through the daemon until `vdb` is there (`present`) or gone.
async fn until_vdb(c: &mut NodeClient, id: &str, present: bool) {
    let t = Instant::now();
    loop {
        let out = c
            .execute_in_guest(pb::ExecuteInGuestRequest {
                vm_id: id.into(),
                command: "/bin/lsblk".into(),
                args: vec!["-dno".into(), "NAME".into()],
                timeout_seconds: 10,
                wait_for_exit: true,
                ..Default::default()
            })
            .await
            .expect("ExecuteInGuest")
            .into_inner();
        if out.stdout.lines().any(|l| l.trim() == "vdb") == present {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "vdb never changed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("LQ_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let (daemon, mut c) = Daemon::start().await;
    let mut events = subscribe(&mut c).await;
    let id = create_and_start(&mut c, vm_request(&daemon, "bench-hotplug", None)).await;
    let verdict = daemon_verdict(&daemon, &mut events, &id, Instant::now() + BOOT_LIMIT).await;
    assert_eq!(verdict, "guest boot: ready");
    // The agent answers through the daemon once the guest is ready.
    until_vdb(&mut c, &id, false).await;
    let (mut attach, mut detach) = (Vec::new(), Vec::new());
    for i in 0..n {
        let disk = format!("disk-bench-{i}");
        let t = Instant::now();
        c.attach_disk(pb::AttachDiskRequest {
            vm_id: id.clone(),
            disk: Some(pb::DiskSpec {
                id: disk.clone(),
                size_gib: 1,
                ..Default::default()
            }),
        })
        .await
        .expect("AttachDisk");
        let rpc = t.elapsed();
        until_vdb(&mut c, &id, true).await;
        attach.push((rpc, t.elapsed()));
        let t = Instant::now();
        c.detach_disk(pb::DetachDiskRequest {
            vm_id: id.clone(),
            disk_id: disk,
            delete_file: true,
        })
        .await
        .expect("DetachDisk");
        let rpc = t.elapsed();
        until_vdb(&mut c, &id, false).await;
        detach.push((rpc, t.elapsed()));
    }
    for (what, mut v) in [("AttachDisk", attach), ("DetachDisk", detach)] {
        v.sort_by_key(|(_, seen)| *seen);
        let (rpc, seen) = v[v.len() / 2];
        println!(
            "{what} x{n}: RPC {:.1} ms, to the guest's lsblk {:.1} ms (median; max {:.1} ms)",
            ms(rpc),
            ms(seen),
            ms(v.last().unwrap().1)
        );
    }
}
