//! A full node: N defined VMs (100), M of them running (50), on one daemon binary over its Unix
//! socket. Prints each figure of the scale table in `BENCHMARKS.md`: 100 concurrent CreateVM, 50
//! StartVMs at once with every VM_STARTED delivered to 10 StreamEvents subscribers, the daemon's
//! RSS and open descriptors, what each running VM costs the host (QEMU RSS), ListVMs and
//! GetVMStatus latency, the daemon's CPU while the VMs idle, and kill -9 → restart → every
//! running VM re-adopted and answering.
//!
//! The running VMs are boot-sector guests (a 1 MiB raw disk whose boot sector prints a line on
//! COM1 and halts; 1 vCPU, 32 MiB, no NIC): SeaBIOS, then an idle CPU, so 50 fit on a 2-core
//! machine under TCG.
//!
//! Run by hand: `cargo bench -p limiquantix-node --bench scale` (`LQ_BENCH_DEFINED` sets N,
//! default 100; `LQ_BENCH_RUNNING` M, default 50; `LQ_BENCH_WINDOW` the idle window in seconds,
//! default 20). Not run by `cargo test` or CI.

#[path = "../tests/common/mod.rs"]
mod common;

use common::bootsector::{boot_sector_image, request};
use common::{Node, eventually};
use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt as _;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The value of `field` (kB) in `/proc/<pid>/status`, in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
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

/// p50 and p99 of `calls` runs of `f`.
async fn latency(calls: usize, mut f: impl AsyncFnMut(usize)) -> (Duration, Duration) {
    let mut lat = Vec::with_capacity(calls);
    for i in 0..calls {
        let t = Instant::now();
        f(i).await;
        lat.push(t.elapsed());
    }
    lat.sort();
    (lat[calls / 2], lat[calls * 99 / 100])
}

/// Runs `f(client, i)` for every `i < n` at once; the wall time of the whole.
async fn all_at_once<F, Fut>(client: &NodeClient, n: usize, f: F) -> Duration
where
    F: Fn(NodeClient, usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let t = Instant::now();
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(f(client.clone(), i))).collect();
    for t in tasks {
        t.await.unwrap();
    }
    t.elapsed()
}

/// A StreamEvents subscriber: collects `(vm_id, type, when)` until it has `want` VM_STARTED.
fn subscriber(
    mut client: NodeClient,
    want: usize,
) -> tokio::task::JoinHandle<Vec<(String, i32, Instant)>> {
    tokio::spawn(async move {
        let mut stream = client.stream_events(()).await.unwrap().into_inner();
        let mut seen = Vec::new();
        let mut started = 0;
        while started < want {
            let next = tokio::time::timeout(Duration::from_secs(120), stream.next()).await;
            let Ok(Some(Ok(e))) = next else { break };
            if e.r#type == pb::EventType::VmStarted as i32 {
                started += 1;
            }
            seen.push((e.vm_id, e.r#type, Instant::now()));
        }
        seen
    })
}

/// Checks the subscribers' events: every VM_STARTED delivered to each, each VM's events in the
/// same order for all; prints the delay after the last StartVM answer.
fn check_delivery(got: &[Vec<(String, i32, Instant)>], m: usize, last_start: Instant) {
    let per_vm = |s: &[(String, i32, Instant)]| {
        let mut by: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (vm, ty, _) in s {
            by.entry(vm.clone()).or_default().push(*ty);
        }
        by
    };
    let reference = per_vm(&got[0]);
    let mut latest = last_start;
    for (i, s) in got.iter().enumerate() {
        let started = s
            .iter()
            .filter(|e| e.1 == pb::EventType::VmStarted as i32)
            .count();
        assert_eq!(started, m, "subscriber {i} got {started} of {m} VM_STARTED");
        let mine = per_vm(s);
        for (vm, types) in &mine {
            let theirs = &reference[vm];
            let n = types.len().min(theirs.len());
            assert_eq!(
                types[..n],
                theirs[..n],
                "subscriber {i}: VM {vm} out of order"
            );
        }
        for e in s.iter().filter(|e| e.1 == pb::EventType::VmStarted as i32) {
            latest = latest.max(e.2);
        }
    }
    println!(
        "StreamEvents: every VM_STARTED of {m} VMs delivered to {} subscribers, in order per VM, \
         the last {:.1} ms after the last StartVM answered",
        got.len(),
        ms(latest.saturating_duration_since(last_start))
    );
}

/// The QEMU pids of the running VMs (their pidfiles).
fn qemu_pids(run: &Path) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir(run.join("vms")) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("qemu.pid")).ok())
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

async fn running_count(client: &mut NodeClient) -> usize {
    let list = client.list_v_ms(()).await.unwrap().into_inner();
    list.vms
        .iter()
        .filter(|v| v.state == pb::PowerState::Running as i32)
        .count()
}

/// Starts `ids` at once with 10 subscribers listening; returns when every VM runs.
async fn start_all(client: &mut NodeClient, ids: &[String]) {
    let m = ids.len();
    let subs: Vec<_> = (0..10).map(|_| subscriber(client.clone(), m)).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids2 = ids.to_vec();
    let wall = all_at_once(client, m, move |mut c, i| {
        let vm_id = ids2[i].clone();
        async move {
            c.start_vm(pb::VmIdRequest { vm_id }).await.unwrap();
        }
    })
    .await;
    let last_start = Instant::now();
    println!(
        "{m} StartVM at once: {:.2} s ({:.1} ms each on average)",
        wall.as_secs_f64(),
        ms(wall) / m as f64
    );
    let mut got = Vec::new();
    for s in subs {
        got.push(s.await.unwrap());
    }
    check_delivery(&got, m, last_start);
    assert_eq!(running_count(client).await, m);
}

/// ListVMs and GetVMStatus latency with every VM defined.
async fn query_latency(client: &mut NodeClient, ids: &[String], when: &str) {
    let (p50, p99) = latency(200, async |_| {
        client.list_v_ms(()).await.unwrap();
    })
    .await;
    println!(
        "ListVMs ({when}, {} VMs): p50 {:.3} ms, p99 {:.3} ms (200 calls)",
        ids.len(),
        ms(p50),
        ms(p99)
    );
    let (p50, p99) = latency(500, async |i| {
        let vm_id = ids[i % ids.len()].clone();
        client
            .get_vm_status(pb::VmIdRequest { vm_id })
            .await
            .unwrap();
    })
    .await;
    println!(
        "GetVMStatus ({when}): p50 {:.3} ms, p99 {:.3} ms (500 calls over every VM)",
        ms(p50),
        ms(p99)
    );
}

/// The daemon's and the QEMUs' footprint.
fn footprint(node: &Node, m: usize, fds_idle: usize) {
    let pid = node.daemon_pid();
    let fds = fd_count(pid);
    println!(
        "daemon: RSS {:.1} MiB (peak {:.1} MiB), {fds} open descriptors ({:.2} per running VM)",
        status_mib(pid, "VmRSS:"),
        status_mib(pid, "VmHWM:"),
        (fds.saturating_sub(fds_idle)) as f64 / m as f64
    );
    let pids = qemu_pids(&node.run);
    let rss: f64 = pids.iter().map(|p| status_mib(*p, "VmRSS:")).sum();
    let fds: usize = pids.iter().map(|p| fd_count(*p)).sum();
    println!(
        "each running VM costs the host: QEMU RSS {:.1} MiB, {:.0} QEMU descriptors ({} QEMUs, \
         {:.0} MiB in all)",
        rss / pids.len().max(1) as f64,
        fds as f64 / pids.len().max(1) as f64,
        pids.len(),
        rss
    );
}

/// kill -9, restart, and the time until every running VM is listed running and answers.
async fn restart(node: &mut Node, ids: &[String], m: usize) -> NodeClient {
    node.kill();
    let t = Instant::now();
    node.start();
    let mut client = node.client().await;
    let up = eventually(Duration::from_secs(60), async || {
        running_count(&mut client).await == m
    })
    .await;
    assert!(up, "not every VM was re-adopted");
    for vm_id in &ids[..m] {
        let st = client
            .get_vm_status(pb::VmIdRequest {
                vm_id: vm_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(st.state, pb::PowerState::Running as i32, "{vm_id}");
    }
    println!(
        "kill -9 → restart → {m} running VMs re-adopted and answering: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    client
}

#[tokio::main]
async fn main() {
    let n = env_or("LQ_BENCH_DEFINED", 100) as usize;
    let m = (env_or("LQ_BENCH_RUNNING", 50) as usize).min(n);
    let window = Duration::from_secs(env_or("LQ_BENCH_WINDOW", 20));
    let mut node = Node::new();
    let image = boot_sector_image(&node.images);
    node.start();
    let mut client = node.client().await;
    let ids: Vec<String> = (0..n)
        .map(|i| format!("5ca1e000-0000-4000-8000-{i:012x}"))
        .collect();
    let (ids2, image2) = (ids.clone(), image.clone());
    let wall = all_at_once(&client, n, move |mut c, i| {
        let r = request(&ids2[i], &format!("s{i}"), &image2);
        async move {
            c.create_vm(r).await.unwrap();
        }
    })
    .await;
    println!("{n} concurrent CreateVM: {:.2} s", wall.as_secs_f64());
    query_latency(&mut client, &ids, "none running").await;
    let fds_idle = fd_count(node.daemon_pid());
    start_all(&mut client, &ids[..m]).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    footprint(&node, m, fds_idle);
    query_latency(&mut client, &ids, &format!("{m} running")).await;
    let pid = node.daemon_pid();
    let (before, t) = (cpu_ticks(pid), Instant::now());
    tokio::time::sleep(window).await;
    let (after, secs) = (cpu_ticks(pid), t.elapsed().as_secs_f64());
    println!(
        "daemon CPU while {m} VMs idle: {:.2} % of one core over {secs:.0} s ({} ticks)",
        (after - before) as f64 / 100.0 / secs * 100.0,
        after - before
    );
    let mut client = restart(&mut node, &ids, m).await;
    query_latency(&mut client, &ids, "after the restart").await;
    footprint(&node, m, fds_idle);
}
