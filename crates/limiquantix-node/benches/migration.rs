//! Live migration through the daemons against the same migration driven by hand over QMP.
//!
//! Two daemons on one host share a pool; a tiny guest (1 vCPU, `LQ_BENCH_MEMORY_MIB`, default
//! 1024) boots on A. Each round moves it A → B with MigrateVM (timed from the call to the
//! COMPLETE message, sent once the guest runs on the target: PrepareMigration on the target,
//! `migrate`, ReceiveMigration; the source's cleanup follows), then B → A by hand: the target prepared by A's PrepareMigration as before, B's
//! daemon stopped, and B's QEMU driven over its QMP socket (`migrate-set-capabilities`,
//! `migrate-set-parameters`, `migrate`, `query-migrate` every 10 ms), then ReceiveMigration on
//! A (timed from PrepareMigration to ReceiveMigration's answer). Downtime is QEMU's own figure
//! (`query-migrate` `downtime`). Run by hand: `cargo bench -p limiquantix-node --bench
//! migration` (not in CI); `LQ_BENCH_KEEP_LOGS=DIR` copies both daemons' logs there.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Node, cloud_vm, eventually};
use limiquantix_proto::v1 as pb;
use limiquantix_qemu::paths::RuntimePaths;
use limiquantix_qemu::qmp::QmpClient;
use limiquantix_vm::model::VmId;
use serde_json::json;
use std::time::{Duration, Instant};

const ID: &str = "0beec000-0000-4000-8000-00000000a1f0";
const DOWNTIME_MS: u64 = 300;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A → B through the daemons: (seconds, downtime ms).
async fn through_daemons(a: &Node, b: &Node) -> (f64, u64) {
    let mut ca = a.client().await;
    let req = pb::MigrateVmRequest {
        vm_id: ID.into(),
        target_node_uri: format!("unix:{}", b.socket().display()),
        live: true,
        max_downtime_ms: DOWNTIME_MS as u32,
        ..Default::default()
    };
    let t0 = Instant::now();
    let mut stream = ca.migrate_vm(req).await.unwrap().into_inner();
    let mut took = 0.0;
    let mut last = None;
    while let Some(p) = stream.message().await.unwrap() {
        if p.phase() == pb::MigrationPhase::Complete {
            took = t0.elapsed().as_secs_f64();
        }
        last = Some(p);
    }
    let last = last.unwrap();
    assert_eq!(last.phase(), pb::MigrationPhase::Complete, "{last:?}");
    (took, last.downtime_ms)
}

/// B → A by hand over B's QMP (B's daemon stopped meanwhile): (seconds, downtime ms).
async fn by_hand(b: &mut Node, a: &Node) -> (f64, u64) {
    let mut cb = b.client().await;
    let def = cb
        .get_vm_status(pb::VmIdRequest { vm_id: ID.into() })
        .await
        .unwrap();
    drop(def);
    let definition = std::fs::read_to_string(b.state.join("vms").join(ID).join("vm.json")).unwrap();
    let seed =
        std::fs::read(b.state.join("vms").join(ID).join("cloud-init.iso")).unwrap_or_default();
    drop(cb);
    b.terminate();
    let qmp_path = RuntimePaths::new(&b.state, &b.run, &VmId::parse(ID).unwrap()).qmp_socket();
    let qmp = QmpClient::connect(&qmp_path, Duration::from_secs(10))
        .await
        .unwrap();
    let mut ca = a.client().await;
    let t0 = Instant::now();
    let token = ca
        .prepare_migration(pb::PrepareMigrationRequest {
            vm_id: ID.into(),
            definition_json: definition,
            seed_iso: seed,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let caps = json!({ "capabilities": [
        { "capability": "events", "state": true },
        { "capability": "auto-converge", "state": true },
        { "capability": "pause-before-switchover", "state": false },
    ]});
    qmp.execute("migrate-set-capabilities", Some(caps))
        .await
        .unwrap();
    let params = json!({ "downtime-limit": DOWNTIME_MS, "max-bandwidth": 100u64 << 30 });
    qmp.execute("migrate-set-parameters", Some(params))
        .await
        .unwrap();
    let uri = json!({ "uri": token.incoming_uri });
    qmp.execute("migrate", Some(uri)).await.unwrap();
    let downtime = loop {
        let r = qmp.execute("query-migrate", None).await.unwrap();
        match r["status"].as_str() {
            Some("completed") if r["downtime"].as_u64().unwrap_or(0) > 0 => {
                break r["downtime"].as_u64().unwrap();
            }
            Some("failed") => panic!("migration failed: {r}"),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    ca.receive_migration(token).await.unwrap();
    let took = t0.elapsed().as_secs_f64();
    let _ = qmp.execute("quit", None).await;
    drop(qmp);
    // B's record of the VM goes: the guest is A's now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::remove_dir_all(b.state.join("vms").join(ID)).unwrap();
    let _ = std::fs::remove_dir_all(b.run.join("vms").join(ID));
    b.start();
    (took, downtime)
}

#[tokio::main]
async fn main() {
    let rounds = env_or("LQ_BENCH_ROUNDS", 3);
    let memory = env_or("LQ_BENCH_MEMORY_MIB", 1024);
    let (mut a, mut b) = (Node::new(), Node::new());
    let shared = a.root.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    for n in [&mut a, &mut b] {
        n.args = vec!["--pool".into(), format!("shared={}", shared.display())];
    }
    let image = shared.join("tiny.qcow2");
    std::fs::copy(a.tiny_image(), &image).unwrap();
    a.start();
    b.start();
    let mut ca = a.client().await;
    let mut r = cloud_vm(ID, "mig", &image);
    let spec = r.spec.as_mut().unwrap();
    spec.memory_mib = memory;
    spec.disks[0].pool_id = "shared".into();
    ca.create_vm(r).await.unwrap();
    ca.start_vm(pb::VmIdRequest { vm_id: ID.into() })
        .await
        .unwrap();
    let booted = eventually(Duration::from_secs(600), async || {
        common::serial_log(&mut ca, ID)
            .await
            .contains("LQ-TINY-GUEST READY")
    })
    .await;
    assert!(booted, "the tiny guest did not boot");
    println!("round | daemons s | daemons downtime ms | by hand s | by hand downtime ms");
    let (mut sum_d, mut sum_h) = (0.0, 0.0);
    for round in 1..=rounds {
        let (td, dd) = through_daemons(&a, &b).await;
        let (th, dh) = by_hand(&mut b, &a).await;
        println!("{round} | {td:.3} | {dd} | {th:.3} | {dh}");
        sum_d += td;
        sum_h += th;
    }
    if let Ok(dir) = std::env::var("LQ_BENCH_KEEP_LOGS") {
        std::fs::copy(&a.log, format!("{dir}/a.log")).unwrap();
        std::fs::copy(&b.log, format!("{dir}/b.log")).unwrap();
    }
    println!(
        "mean: daemons {:.3} s, by hand {:.3} s, ratio {:.2}",
        sum_d / rounds as f64,
        sum_h / rounds as f64,
        sum_d / sum_h
    );
}
