//! The metrics collector's cost: the daemon's CPU use while it samples N running tiny VMs every
//! 5 s (its own utime + stime from `/proc/<pid>/stat` over a 30 s window, after every guest has
//! booted: an upper bound on what collection costs, since the daemon does little else then),
//! and GetVMStatus latency over the Unix socket with the collector running.
//!
//! Run: `cargo bench -p limiquantix-node --bench metrics` (`LQ_BENCH_VMS` sets N, default 20;
//! `LQ_BENCH_WINDOW` the window in seconds, default 30; `LQ_BENCH_INTERVAL=3600` is the
//! baseline without sampling). Each VM: 1 vCPU, 128 MiB (the tiny
//! guest does not boot in 64 MiB). Not run by `cargo test`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Node, cloud_vm, eventually};
use limiquantix_proto::v1 as pb;
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A process's user + system time in clock ticks (100 per second).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    f[0] + f[1]
}

#[tokio::main]
async fn main() {
    let n = env_or("LQ_BENCH_VMS", 20) as usize;
    let window = Duration::from_secs(env_or("LQ_BENCH_WINDOW", 30));
    let mut node = Node::new();
    let interval = env_or("LQ_BENCH_INTERVAL", 5);
    node.args = vec!["--metrics-interval".into(), interval.to_string()];
    let image = node.tiny_image();
    node.start();
    let mut client = node.client().await;
    let ids: Vec<String> = (0..n)
        .map(|i| format!("0beec000-0000-4000-8000-{i:012x}"))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let mut r = cloud_vm(id, &format!("m{i}"), &image);
        r.spec.as_mut().unwrap().memory_mib = 128;
        client.create_vm(r).await.unwrap();
        let req = pb::VmIdRequest { vm_id: id.clone() };
        client.start_vm(req).await.unwrap();
    }
    let t0 = Instant::now();
    for id in &ids {
        let booted = eventually(Duration::from_secs(600), async || {
            common::serial_log(&mut client, id)
                .await
                .contains("LQ-TINY-GUEST READY")
        })
        .await;
        assert!(booted, "VM {id} did not boot");
    }
    println!(
        "{n} tiny VMs booted in {:.0} s (TCG)",
        t0.elapsed().as_secs_f64()
    );
    // Every VM sampled at least once (the baseline's only sample is at start: none is then).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let listed = client.list_v_ms(()).await.unwrap().into_inner();
    let sampled = listed
        .vms
        .iter()
        .filter(|v| {
            v.resource_usage
                .as_ref()
                .is_some_and(|u| u.memory_used_bytes > 0)
        })
        .count();
    if interval <= 5 {
        assert_eq!(sampled, n, "every running VM has a sample");
    }

    let pid = node.daemon_pid();
    let (before, start) = (cpu_ticks(pid), Instant::now());
    tokio::time::sleep(window).await;
    let (after, secs) = (cpu_ticks(pid), start.elapsed().as_secs_f64());
    let share = (after - before) as f64 / 100.0 / secs * 100.0;
    println!(
        "daemon CPU with {n} running VMs sampled every {interval} s: {share:.2} % of one core over \
         {secs:.0} s ({} ticks)",
        after - before
    );

    let mut lat = Vec::new();
    for _ in 0..500 {
        let req = pb::VmIdRequest {
            vm_id: ids[0].clone(),
        };
        let t = Instant::now();
        client.get_vm_status(req).await.unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "GetVMStatus with the collector running: p50 {:.3} ms, p99 {:.3} ms (500 calls)",
        ms(lat[lat.len() / 2]),
        ms(lat[lat.len() * 99 / 100])
    );
}
