//! Guest-agent operations on a real guest (the Debian test image, TCG unless `LQ_TEST_ACCEL`
//! says otherwise), all through the daemon's RPCs (never a direct agent connection), one boot:
//!
//! - ExecuteInGuest: `uname -r` answers; `exit 3` is exit code 3; 5 MiB of output is cut at
//!   1 MiB and flagged.
//! - WriteGuestFile + ReadGuestFile: 3 MiB of binary data come back byte for byte.
//! - QuiesceFilesystems: a write started just before the freeze completes only after
//!   ThawFilesystems; the frozen agent refuses guest-exec with its own message.
//! - SyncTime: a guest clock set back one hour is within a few seconds of the host's after.
//! - Resource usage under load (`dd` to the disk, a CPU loop): disk-write bytes and CPU rise in
//!   GetVMStatus, in StreamMetrics and in `/metrics` (scraped over HTTP, parsed as Prometheus
//!   text).
//! - The HTTP face's VM tabs (`--http-listen`): logs, QEMU agent ping, execute, files list and
//!   read, requested as the control plane's proxy sends them.
//! - GuestShutdown: the guest powers off, the VM is stopped with a VM_STOPPED event.

mod common;
#[path = "e2e_guest_ops/http_tabs.rs"]
mod http_tabs;

use common::guest::*;
use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Runs argv in the guest through ExecuteInGuest and waits for it.
async fn exec(client: &mut NodeClient, id: &str, argv: &[&str]) -> pb::ExecuteInGuestResponse {
    exec_req(client, id, argv, true)
        .await
        .unwrap_or_else(|e| panic!("ExecuteInGuest {argv:?}: {e:?}"))
}

async fn exec_req(
    client: &mut NodeClient,
    id: &str,
    argv: &[&str],
    wait: bool,
) -> Result<pb::ExecuteInGuestResponse, tonic::Status> {
    client
        .execute_in_guest(pb::ExecuteInGuestRequest {
            vm_id: id.into(),
            command: argv[0].into(),
            args: argv[1..].iter().map(|a| a.to_string()).collect(),
            wait_for_exit: wait,
            timeout_seconds: 60,
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The guest's clock in seconds (`date +%s`).
async fn guest_secs(client: &mut NodeClient, id: &str) -> i64 {
    let r = exec(client, id, &["date", "+%s"]).await;
    r.stdout.trim().parse().expect("seconds")
}

fn host_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The VM's resource usage in GetVMStatus.
async fn usage(client: &mut NodeClient, id: &str) -> pb::ResourceUsage {
    client
        .get_vm_status(pb::VmIdRequest { vm_id: id.into() })
        .await
        .expect("GetVMStatus")
        .into_inner()
        .resource_usage
        .expect("resource_usage")
}

/// A counter of the VM in `/metrics` (scraped over HTTP, parsed as Prometheus text).
async fn scraped(port: u16, metric: &str, id: &str) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let lines = text
        .lines()
        .filter(|l| *l != "# EOF")
        .map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && s.labels.get("vm_id") == Some(id))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// `dd` writes 128 MiB to the guest's disk and a loop keeps a vCPU busy: GetVMStatus,
/// StreamMetrics and `/metrics` show the disk writes and the CPU rise.
async fn usage_under_load(client: &mut NodeClient, id: &str, port: u16) {
    const WRITE: u64 = 128 << 20;
    let before = usage(client, id).await;
    let dd = exec(
        client,
        id,
        &[
            "dd",
            "if=/dev/zero",
            "of=/root/lq-dd",
            "bs=1M",
            "count=128",
            "oflag=direct",
        ],
    )
    .await;
    assert!(dd.success, "{dd:?}");
    exec_req(
        client,
        id,
        &["timeout", "8", "sh", "-c", "while :; do :; done"],
        false,
    )
    .await
    .expect("a CPU loop");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let busy = usage(client, id).await;
    assert!(
        busy.disk_write_bytes >= before.disk_write_bytes + WRITE,
        "disk writes rise by the dd: {before:?} then {busy:?}"
    );
    assert!(
        busy.cpu_usage_percent > 50.0 && busy.cpu_time_ns > before.cpu_time_ns,
        "the loop shows as CPU: {before:?} then {busy:?}"
    );
    let mut stream = client
        .stream_metrics(pb::StreamMetricsRequest {
            interval_seconds: 1,
        })
        .await
        .expect("StreamMetrics")
        .into_inner();
    let sample = stream
        .message()
        .await
        .expect("a message")
        .expect("a sample");
    let vm = sample
        .vms
        .iter()
        .find(|v| v.vm_id == id)
        .expect("the VM in StreamMetrics");
    assert!(
        vm.disk_write_bytes >= before.disk_write_bytes + WRITE,
        "{vm:?}"
    );
    let written = scraped(port, "limiquantix_vm_disk_write_bytes_total", id).await;
    assert!(
        written >= (before.disk_write_bytes + WRITE) as f64,
        "/metrics: {written}"
    );
    let cpu = scraped(port, "limiquantix_vm_cpu_seconds_total", id).await;
    assert!(
        cpu * 1e9 >= busy.cpu_time_ns as f64 * 0.9,
        "/metrics CPU: {cpu}"
    );
    // Once the loop is over, the idle guest's CPU falls back near zero.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let idle = usage(client, id).await;
    println!(
        "guest CPU: busy {:.1} %, idle {:.1} % of one host CPU",
        busy.cpu_usage_percent, idle.cpu_usage_percent
    );
    assert!(idle.cpu_usage_percent < 30.0, "an idle guest: {idle:?}");
}

async fn commands(client: &mut NodeClient, id: &str) {
    let uname = exec(client, id, &["uname", "-r"]).await;
    assert!(uname.success && uname.exit_code == 0, "{uname:?}");
    assert!(!uname.stdout.trim().is_empty());
    let three = exec(client, id, &["/bin/sh", "-c", "exit 3"]).await;
    assert!(!three.success && three.exit_code == 3, "{three:?}");
    let big = exec(client, id, &["/bin/sh", "-c", "head -c 5242880 /dev/zero"]).await;
    assert!(big.success && big.stdout_truncated && !big.stderr_truncated);
    assert_eq!(big.stdout.len(), 1 << 20, "cut at 1 MiB");
}

async fn files(client: &mut NodeClient, id: &str) {
    let data: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let w = client
        .write_guest_file(pb::WriteGuestFileRequest {
            vm_id: id.into(),
            path: "/root/lq-blob.bin".into(),
            data: data.clone(),
            mode: 0o600,
            ..Default::default()
        })
        .await
        .expect("WriteGuestFile")
        .into_inner();
    assert_eq!(w.bytes_written, data.len() as u64);
    let r = client
        .read_guest_file(pb::ReadGuestFileRequest {
            vm_id: id.into(),
            path: "/root/lq-blob.bin".into(),
            ..Default::default()
        })
        .await
        .expect("ReadGuestFile")
        .into_inner();
    assert!(
        r.eof && r.total_size == data.len() as u64,
        "{}",
        r.total_size
    );
    assert!(r.data == data, "the file comes back byte for byte");
    let mode = exec(client, id, &["stat", "-c", "%a", "/root/lq-blob.bin"]).await;
    assert_eq!(mode.stdout.trim(), "600");
}

async fn freeze_and_thaw(client: &mut NodeClient, id: &str) {
    let t0 = guest_secs(client, id).await;
    let probe = "sleep 4; date +%s > /root/lq-frozen-probe";
    exec_req(client, id, &["/bin/sh", "-c", probe], false)
        .await
        .expect("a detached command");
    let frozen = client
        .quiesce_filesystems(pb::QuiesceFilesystemsRequest {
            vm_id: id.into(),
            ..Default::default()
        })
        .await
        .expect("QuiesceFilesystems")
        .into_inner();
    assert!(frozen.frozen_count >= 1, "{frozen:?}");
    let refused = exec_req(client, id, &["true"], true).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(refused.message().contains("guest-exec"), "{refused:?}");
    tokio::time::sleep(Duration::from_secs(12)).await;
    let thawed = client
        .thaw_filesystems(pb::ThawFilesystemsRequest {
            vm_id: id.into(),
            ..Default::default()
        })
        .await
        .expect("ThawFilesystems")
        .into_inner();
    assert!(thawed.thawed_count >= 1 && thawed.frozen_duration_ms >= 12_000);
    let mut written = None;
    for _ in 0..20 {
        let r = exec(client, id, &["cat", "/root/lq-frozen-probe"]).await;
        if let Ok(t) = r.stdout.trim().parse::<i64>() {
            written = Some(t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let written = written.expect("the probe is written after the thaw");
    assert!(
        written >= t0 + 10,
        "the write waited for the thaw: started at {t0}, written at {written}"
    );
}

async fn sync_time(client: &mut NodeClient, id: &str) {
    let back = exec(client, id, &["date", "-s", "-1 hour"]).await;
    assert!(back.success, "{back:?}");
    assert!(host_secs() - guest_secs(client, id).await > 3000);
    let r = client
        .sync_time(pb::SyncTimeRequest {
            vm_id: id.into(),
            ..Default::default()
        })
        .await
        .expect("SyncTime")
        .into_inner();
    assert!(r.success && r.offset_seconds < -3000.0, "{r:?}");
    let skew = guest_secs(client, id).await - host_secs();
    assert!(
        skew.abs() <= 5,
        "the guest is {skew} s off the host after SyncTime"
    );
}

async fn poweroff(client: &mut NodeClient, events: &mut Events, id: &str) {
    let r = client
        .guest_shutdown(pb::GuestShutdownRequest {
            vm_id: id.into(),
            ..Default::default()
        })
        .await
        .expect("GuestShutdown")
        .into_inner();
    assert!(r.accepted);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let e = tokio::time::timeout_at(deadline.into(), events.message())
            .await
            .expect("VM_STOPPED in time")
            .expect("the event stream")
            .expect("an event");
        if e.vm_id == id && e.r#type == pb::EventType::VmStopped as i32 {
            break;
        }
    }
    let status = client
        .get_vm_status(pb::VmIdRequest { vm_id: id.into() })
        .await
        .expect("GetVMStatus")
        .into_inner();
    assert_eq!(status.state, pb::PowerState::Stopped as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_agent_operations_through_the_daemon() {
    let _one = BOOTING.lock().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let https = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (daemon, mut client) = Daemon::start_with(&[
        "--metrics-listen",
        &listen,
        "--metrics-interval",
        "1",
        "--http-listen",
        &https.to_string(),
        "--allow-from",
        "127.0.0.1",
    ])
    .await;
    let mut events = subscribe(&mut client).await;
    let id = create_and_start(&mut client, vm_request(&daemon, "guestops", None)).await;
    let verdict = daemon_verdict(&daemon, &mut events, &id, Instant::now() + BOOT_LIMIT).await;
    assert_eq!(verdict, "guest boot: ready");

    commands(&mut client, &id).await;
    files(&mut client, &id).await;
    http_tabs::vm_tabs(&format!("https://{https}"), &id).await;
    freeze_and_thaw(&mut client, &id).await;
    sync_time(&mut client, &id).await;
    usage_under_load(&mut client, &id, port).await;
    poweroff(&mut client, &mut events, &id).await;
}
