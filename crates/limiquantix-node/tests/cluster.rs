//! Joining a LimiQuantix control plane, with the daemon binary and a fake control plane that
//! answers as the Go one does: the control plane down at start (the daemon serves and retries
//! quietly), registration content, the reports after it (VMs, images, SyncFullState answered
//! 501), heartbeats on time with real figures and the pools, re-registration after a
//! `not_found`, and the node id across a daemon restart.

mod common;
mod fake_cp;

use common::Node;
use fake_cp::{Call, FakeCp};
use limiquantix_proto::v1 as pb;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const VM_ID: &str = "0b5c9a1e-6f4d-4c2b-9a7e-3d2f1e0c9b8a";
const WAIT: Duration = Duration::from_secs(45);

/// A node whose daemon joins `cp` with a one-second heartbeat.
fn node_for(cp: &FakeCp) -> Node {
    let mut node = Node::new();
    let config = node.root.join("node.toml");
    std::fs::write(&config, "[control_plane]\nheartbeat_interval = 1\n").unwrap();
    node.args = vec![
        "--config".into(),
        config.display().to_string(),
        "--control-plane".into(),
        cp.url(),
    ];
    node
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// A protojson uint64: a string (or a number).
fn u64_of(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        Value::Number(n) => n.as_u64().unwrap(),
        Value::Null => 0,
        other => panic!("not a uint64: {other}"),
    }
}

async fn control_plane_status(node: &Node) -> pb::ControlPlaneStatus {
    let info = node.client().await.get_node_info(()).await.unwrap();
    info.into_inner()
        .control_plane
        .expect("control_plane is set")
}

fn check_registration(call: &Call) {
    let b = &call.body;
    assert_eq!(b["hostname"], hostname());
    assert_eq!(
        b["managementIp"], "127.0.0.1:9090",
        "route to the control plane, :9090"
    );
    assert_eq!(b["role"]["compute"], true);
    let cpu = &b["cpuInfo"];
    let sockets = cpu["sockets"].as_u64().unwrap();
    let cores = cpu["coresPerSocket"].as_u64().unwrap();
    assert!(sockets * cores > 0, "{cpu}");
    assert!(cpu["totalThreads"].as_u64().unwrap() >= sockets * cores);
    assert!(u64_of(&b["memoryInfo"]["totalBytes"]) > 0);
    assert!(u64_of(&b["memoryInfo"]["allocatableBytes"]) > 0);
    assert!(
        b["memoryInfo"]["totalBytes"].is_string(),
        "int64 as a string"
    );
    assert!(
        b["networkDevices"]
            .as_array()
            .is_some_and(|n| !n.is_empty()),
        "{b}"
    );
}

fn check_heartbeat(call: &Call, node_id: &str, pool: &Path) {
    let b = &call.body;
    assert_eq!(b["nodeId"], node_id);
    let total = u64_of(&b["memoryTotalMib"]);
    let used = u64_of(&b["memoryUsedMib"]);
    assert!(total > 0 && used > 0 && used <= total, "{b}");
    let cpu = b["cpuUsagePercent"].as_f64().unwrap_or(0.0);
    assert!((0.0..=100.0).contains(&cpu), "{b}");
    let pools = b["storagePools"].as_array().expect("storagePools");
    assert_eq!(pools.len(), 1, "{b}");
    let p = &pools[0];
    assert_eq!(p["poolId"], "pool");
    assert_eq!(p["health"], "HEALTH_HEALTHY");
    assert_eq!(p["mountPath"], pool.display().to_string());
    assert!(u64_of(&p["totalBytes"]) > 0 && u64_of(&p["availableBytes"]) > 0);
    assert_eq!(p["volumeCount"], 1, "the pool's image");
}

/// Heartbeats come about a second apart.
fn check_cadence(beats: &[Call]) {
    for pair in beats.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(500) && gap <= Duration::from_secs(3),
            "heartbeats {gap:?} apart"
        );
    }
}

/// An image in the library and one in the pool, and a defined (not started) VM on the first.
async fn inventory(node: &Node) {
    let image = node.small_image("noble.qcow2");
    std::fs::copy(&image, node.pool.join("pool-image.qcow2")).unwrap();
    let mut client = node.client().await;
    client
        .create_vm(common::cloud_vm(VM_ID, "joined", &image))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_node_joins_a_late_control_plane_and_rejoins_when_forgotten() {
    let mut cp = FakeCp::new();
    let mut node = node_for(&cp);
    node.start();
    inventory(&node).await;

    // The control plane is down: the daemon serves, retries, and says so once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = control_plane_status(&node).await;
    assert!(
        !status.registered && status.node_id.is_empty(),
        "{status:?}"
    );
    assert!(status.last_error.contains("cannot reach"), "{status:?}");
    let mut client = node.client().await;
    client
        .health_check(pb::HealthCheckRequest {})
        .await
        .unwrap();
    let log = node.log_text();
    let warnings = log
        .lines()
        // (The start-up warning that no plaintext listener is on port 9090 is another matter.)
        .filter(|l| l.contains("WARN") && l.contains("control plane") && !l.contains("port 9090"))
        .count();
    assert_eq!(warnings, 1, "one warning, no flood:\n{log}");

    cp.start().await;
    let register = cp.wait_calls("RegisterNode", 1, WAIT).await;
    check_registration(&register[0]);
    let beats = cp.wait_calls("UpdateHeartbeat", 4, WAIT).await;
    let node_id = beats[0].body["nodeId"].as_str().unwrap().to_string();
    assert!(
        beats[0].at - register[0].at < Duration::from_secs(3),
        "first heartbeat at once"
    );
    check_cadence(&beats);
    for beat in &beats {
        check_heartbeat(beat, &node_id, &node.pool);
    }

    let vms = cp.calls("SyncNodeVMs");
    assert_eq!(vms.len(), 1);
    let vm = &vms[0].body["vms"][0];
    assert_eq!(
        (vm["id"].as_str(), vm["name"].as_str()),
        (Some(VM_ID), Some("joined"))
    );
    assert_eq!(vm["state"], "Stopped");
    assert_eq!(
        (vm["cpuCores"].as_u64(), u64_of(&vm["memoryMib"])),
        (Some(1), 256)
    );
    assert!(
        vm["diskPaths"][0]
            .as_str()
            .unwrap()
            .starts_with(&node.state.display().to_string())
    );
    let images = &cp.calls("limiquantix.storage.v1.ImageService/ScanLocalImages")[0].body["images"];
    let names: Vec<&str> = images
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["noble.qcow2", "pool-image.qcow2"]);
    assert_eq!(images[0]["format"], "qcow2");
    assert_eq!(u64_of(&images[0]["virtualSizeBytes"]), 64 << 20);
    assert_eq!(
        cp.calls("SyncFullState").len(),
        1,
        "sent once, answered 501"
    );

    let status = control_plane_status(&node).await;
    assert!(
        status.registered && status.last_heartbeat.is_some(),
        "{status:?}"
    );
    assert_eq!(
        (status.node_id.as_str(), status.management_ip.as_str()),
        (node_id.as_str(), "127.0.0.1")
    );
    assert!(status.last_error.is_empty(), "{status:?}");

    // The control plane forgets the node: the heartbeat's not_found makes it register again.
    cp.forget_nodes();
    let register = cp.wait_calls("RegisterNode", 2, WAIT).await;
    check_registration(&register[1]);
    let mut new_id = String::new();
    let rejoined = common::eventually(WAIT, async || {
        let beats = cp.calls("UpdateHeartbeat");
        let last = beats.last().unwrap();
        new_id = last.body["nodeId"].as_str().unwrap().to_string();
        new_id != node_id && last.at > register[1].at
    })
    .await;
    assert!(
        rejoined,
        "heartbeats under a new id after the re-registration"
    );
    assert_eq!(cp.calls("SyncNodeVMs").len(), 2);
    assert_eq!(
        cp.calls("SyncFullState").len(),
        1,
        "not sent again after 501"
    );
    let saved = std::fs::read_to_string(node.state.join("control-plane.json")).unwrap();
    assert!(saved.contains(&new_id), "{saved}");
    assert!(node.terminate().success());
}

#[tokio::test]
async fn the_node_id_survives_a_daemon_restart() {
    let mut cp = FakeCp::new();
    cp.start().await;
    let mut node = node_for(&cp);
    node.start();
    let beats = cp.wait_calls("UpdateHeartbeat", 1, WAIT).await;
    let node_id = beats[0].body["nodeId"].as_str().unwrap().to_string();
    assert!(node.terminate().success());

    // Restarted while the control plane is down: the saved id is shown, not registered.
    cp.stop().await;
    node.start();
    let shown = common::eventually(Duration::from_secs(10), async || {
        control_plane_status(&node).await.node_id == node_id
    })
    .await;
    assert!(shown, "the saved node id is shown before any registration");
    assert!(!control_plane_status(&node).await.registered);

    // Back up: registered again under the same id, heartbeats carry it.
    let before = cp.calls("UpdateHeartbeat").len();
    cp.start().await;
    let beats = cp.wait_calls("UpdateHeartbeat", before + 2, WAIT).await;
    assert_eq!(beats.last().unwrap().body["nodeId"], node_id.as_str());
    assert_eq!(cp.calls("RegisterNode").len(), 2);
    let status = control_plane_status(&node).await;
    assert!(status.registered && status.node_id == node_id, "{status:?}");
    assert!(node.terminate().success());
}
