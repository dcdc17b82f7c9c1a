//! A memory snapshot of a running 1 GiB tiny guest through the backend, against the same QMP
//! commands by hand, side by side on one VM. Prints the total time and the guest-visible pause
//! (from QEMU's `STOP` to its `RESUME` event, by their QEMU timestamps) of each, and the ratios.
//!
//! `cargo bench -p limiquantix-qemu --bench snapshot` (env: `LQ_BENCH_ITERS`, default 5;
//! `LQ_TINY_GUEST_DIR` or the tiny guest is built; `LQ_TEST_ACCEL`, default tcg).
//!
//! - backend: `create_snapshot` (lock, settle, `snapshots.json` with the pending record, the
//!   `snapshot-save` job waited for through events and `query-jobs`, `job-dismiss`, the tree
//!   written again), until it returns.
//! - by hand: `snapshot-save` with the same tag, `vmstate` and devices, waiting for the job's
//!   `JOB_STATUS_CHANGE` to `concluded`, then `query-jobs` and `job-dismiss`.
//!
//! Each iteration runs both, alternating which goes first; snapshots are deleted between runs
//! (not timed).

use std::time::{Duration, Instant};

use limiquantix_qemu::backend::{DefineExtras, QemuBackend};
use limiquantix_qemu::qmp::{QmpClient, QmpEvent};
use limiquantix_vm::SnapshotRequest;
use limiquantix_vm::model::{DiskFormat, DiskSource, DiskSpec};
use serde_json::json;
use tokio::sync::broadcast;

#[path = "../tests/common/mod.rs"]
mod common;

/// Microseconds from the first `STOP` to the next `RESUME` among the events received so far.
fn pause_us(rx: &mut broadcast::Receiver<QmpEvent>) -> u64 {
    let (mut stop, mut pause) = (None, 0);
    while let Ok(e) = rx.try_recv() {
        match (e.name.as_str(), e.timestamp_us) {
            ("STOP", Some(t)) => stop = Some(t),
            ("RESUME", Some(t)) => pause += stop.take().map_or(0, |s| t.saturating_sub(s)),
            _ => {}
        }
    }
    pause
}

async fn by_hand(qmp: &QmpClient, tag: &str) {
    let job = format!("hand-{tag}");
    let mut rx = qmp.subscribe();
    let args = json!({ "job-id": job, "tag": tag, "vmstate": "data-fmt", "devices": ["data-fmt"] });
    qmp.execute("snapshot-save", Some(args)).await.unwrap();
    loop {
        let e = rx.recv().await.unwrap();
        if e.name == "JOB_STATUS_CHANGE" && e.data["id"] == job && e.data["status"] == "concluded" {
            break;
        }
    }
    let jobs = qmp.execute("query-jobs", None).await.unwrap();
    assert!(jobs[0].get("error").is_none(), "{jobs}");
    qmp.execute("job-dismiss", Some(json!({ "id": job })))
        .await
        .unwrap();
}

async fn delete_by_hand(qmp: &QmpClient, tag: &str) {
    let args = json!({ "device": "data-fmt", "name": tag });
    qmp.execute("blockdev-snapshot-delete-internal-sync", Some(args))
        .await
        .unwrap();
}

fn ms(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let iters: usize = std::env::var("LQ_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let tmp = tempfile::tempdir().unwrap();
    let backend = QemuBackend::open(common::config(tmp.path())).await.unwrap();
    let mut def = common::tiny_vm("snapbench");
    def.memory.mib = 1024;
    def.disks.push(DiskSpec {
        id: "data".into(),
        source: DiskSource::Blank {
            size_bytes: 64 << 20,
        },
        bus: Default::default(),
        format: DiskFormat::Qcow2,
        readonly: false,
        boot_index: None,
        limits: None,
    });
    let id = def.id.clone();
    backend
        .define(def.into_valid().unwrap(), DefineExtras::default())
        .await
        .unwrap();
    backend.start(&id).await.unwrap();
    let serial = backend.paths(&id).unwrap().serial_log();
    common::wait_count(&serial, common::READY, 1, Duration::from_secs(120)).await;
    let qmp = backend.qmp(&id).await.unwrap();
    let (mut b_total, mut b_pause, mut h_total, mut h_pause) = (vec![], vec![], vec![], vec![]);
    for i in 0..iters {
        for first_backend in [i % 2 == 0, i % 2 != 0] {
            let mut rx = qmp.subscribe();
            let t = Instant::now();
            if first_backend {
                let req = SnapshotRequest {
                    name: format!("b{i}"),
                    ..Default::default()
                };
                let s = backend.create_snapshot(&id, req).await.unwrap();
                b_total.push(t.elapsed().as_secs_f64() * 1e3);
                b_pause.push(pause_us(&mut rx) as f64 / 1e3);
                backend.delete_snapshot(&id, &s.id).await.unwrap();
            } else {
                by_hand(&qmp, &format!("hand-{i}")).await;
                h_total.push(t.elapsed().as_secs_f64() * 1e3);
                h_pause.push(pause_us(&mut rx) as f64 / 1e3);
                delete_by_hand(&qmp, &format!("hand-{i}")).await;
            }
        }
    }
    let (bt, bp, ht, hp) = (ms(&b_total), ms(&b_pause), ms(&h_total), ms(&h_pause));
    println!(
        "memory snapshot of a running 1 GiB tiny guest, median of {iters} ({})",
        common::accel_kind().qemu_name()
    );
    println!("  backend : total {bt:8.1} ms   guest paused {bp:8.1} ms");
    println!("  by hand : total {ht:8.1} ms   guest paused {hp:8.1} ms");
    println!(
        "  ratio   : total {:.2}x         paused {:.2}x",
        bt / ht,
        bp / hp
    );
    backend.force_stop(&id).await.unwrap();
}
