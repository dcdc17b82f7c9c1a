//! The KVM probe through the daemon: with `--accel auto` a probe guest that never exits (TCG
//! standing in for KVM, `LQ_TEST_KVM_PROBE=never-exits`, so that every machine fails the same
//! way) makes the daemon fall back to TCG and say why in its log, HealthCheck, GetNodeInfo and
//! `lqctl node info`; with `--accel kvm` the daemon refuses to start and says why.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon_binary;
use limiquantix_proto::v1::HealthCheckRequest;
use serde_json::Value;

/// The daemon on `dir` with `--accel ACCEL` and the never-exiting probe; stdout and stderr in
/// `dir/daemon.log`.
fn spawn(dir: &Path, accel: &str) -> Child {
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    Command::new(daemon_binary())
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--listen")
        .arg(format!("unix:{}", dir.join("run/node.sock").display()))
        .args(["--accel", accel])
        .env("LQ_TEST_KVM_PROBE", "never-exits")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
}

/// Waits for the child to exit or the socket to answer, whichever first.
fn wait_socket_or_exit(child: &mut Child, dir: &Path) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let socket = dir.join("run/node.sock");
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return None;
        }
        assert!(
            Instant::now() < deadline,
            "no socket, no exit; log:\n{}",
            log(dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lqctl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lqctl"))
        .arg("--socket")
        .arg(dir.join("run/node.sock"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "lqctl {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

const REASON: &str = "KVM does not run guests on this host (the probe guest did not finish \
                      within 1000 ms (its QEMU was killed)); using TCG";

#[test]
fn auto_falls_back_to_tcg_and_says_why_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn(dir.path(), "auto");
    let exited = wait_socket_or_exit(&mut child, dir.path());
    assert!(
        exited.is_none(),
        "the daemon exited: {exited:?}; log:\n{}",
        log(dir.path())
    );
    let log_text = log(dir.path());
    assert!(
        log_text.contains("the KVM probe guest failed"),
        "{log_text}"
    );
    assert!(log_text.contains(REASON), "{log_text}");
    // The wire: HealthCheck and GetNodeInfo.
    let socket = dir.path().join("run/node.sock");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (health, info) = rt.block_on(async {
        let mut node = limiquantix_proto::client::connect(socket.to_str().unwrap())
            .await
            .unwrap();
        let health = node.health_check(HealthCheckRequest {}).await.unwrap();
        let info = node.get_node_info(()).await.unwrap();
        (health.into_inner(), info.into_inner())
    });
    for accel in [health.accelerator.unwrap(), info.accelerator.unwrap()] {
        assert_eq!(accel.accelerator, "tcg");
        assert_eq!(accel.reason, REASON);
        assert_eq!(accel.probe_millis, 0);
    }
    // lqctl node info, as a table and as JSON.
    let table = lqctl(dir.path(), &["node", "info"]);
    assert!(
        table.contains(&format!("accel:      tcg ({REASON})")),
        "{table}"
    );
    let json: Value =
        serde_json::from_str(&lqctl(dir.path(), &["node", "info", "-o", "json"])).unwrap();
    assert_eq!(json["accelerator"]["name"], "tcg");
    assert_eq!(json["accelerator"]["reason"], REASON);
    assert_eq!(json["accelerator"]["probe_millis"], Value::Null);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn accel_kvm_with_a_failing_probe_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn(dir.path(), "kvm");
    let status = wait_socket_or_exit(&mut child, dir.path());
    let log_text = log(dir.path());
    let Some(status) = status else {
        child.kill().unwrap();
        panic!("the daemon serves with a failed probe; log:\n{log_text}");
    };
    assert!(!status.success(), "{status}");
    assert!(
        log_text.contains(
            "accel kvm was requested but KVM does not run guests on this host: the probe guest \
             did not finish within 1000 ms (its QEMU was killed)"
        ),
        "{log_text}"
    );
}
