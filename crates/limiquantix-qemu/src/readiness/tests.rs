use super::tail::{SerialLogTail, follow_serial_log};
use super::watch::{WatchOptions, watch_boot};
use crate::qga::QgaClient;
use base64::Engine as _;
use limiquantix_vm::readiness::{BootPhase, CloudInitStage, ReadinessTracker};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A real first boot of the test image (SeaBIOS with serial console, syslinux, Debian cloud
/// kernel, cloud-init 22.4 from a NoCloud seed on SATA), trimmed.
const BOOT_OK: &str =
    include_str!("../../../limiquantix-vm/tests/fixtures/readiness/bookworm-first-boot.log");

fn stage(stage: CloudInitStage) -> BootPhase {
    BootPhase::CloudInitRunning { stage }
}

#[tokio::test]
async fn tail_follows_a_growing_file_with_partial_lines_and_truncation() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serial.log");
    let mut tail = SerialLogTail::new(&path, 0).with_poll_interval(Duration::from_millis(5));
    assert!(
        tail.read_available().await.unwrap().is_empty(),
        "missing file is not an error"
    );

    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(b"first\r\nsec").unwrap();
    assert_eq!(tail.read_available().await.unwrap(), vec!["first\r"]);
    assert_eq!(tail.offset(), 7);
    f.write_all(b"ond\nthird").unwrap();
    assert_eq!(tail.next_lines().await.unwrap(), vec!["second"]);
    assert!(tail.read_available().await.unwrap().is_empty());

    // Replaced by a shorter file: read from the start again.
    drop(f);
    std::fs::write(&path, b"new\n").unwrap();
    assert!(tail.read_available().await.unwrap().is_empty());
    assert_eq!(tail.read_available().await.unwrap(), vec!["new"]);

    // Starting at an offset skips earlier boots.
    let mut tail = SerialLogTail::new(&path, 4);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"later\n")
        .unwrap();
    assert_eq!(tail.read_available().await.unwrap(), vec!["later"]);
}

#[tokio::test]
async fn follower_feeds_the_tracker_as_the_log_grows() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serial.log");
    let tracker = Arc::new(Mutex::new(ReadinessTracker::new()));
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let tail = SerialLogTail::new(&path, 0).with_poll_interval(Duration::from_millis(5));
    let task = tokio::spawn(follow_serial_log(tail, tracker.clone(), tx));

    let mut f = std::fs::File::create(&path).unwrap();
    let mut seen = Vec::new();
    for line in BOOT_OK.lines() {
        writeln!(f, "{line}").unwrap();
    }
    f.flush().unwrap();
    while seen.last() != Some(&stage(CloudInitStage::Finished)) {
        let next = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("phase change within 10 s")
            .expect("follower alive");
        seen.push(next);
    }
    assert_eq!(seen.first(), Some(&BootPhase::Firmware));
    assert!(tracker.lock().unwrap().wants_agent_verdict());
    drop(rx);
    // The follower notices the dropped receiver at its next line.
    writeln!(f, "Linux version 6.1.0").unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("follower ends once nobody listens")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn watch_boot_concludes_from_the_console_when_no_agent_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serial.log");
    std::fs::write(&path, BOOT_OK).unwrap();
    let tracker = Arc::new(Mutex::new(ReadinessTracker::new()));
    // Nothing listens on this socket: the agent is unavailable at once.
    let qga = Arc::new(QgaClient::new(dir.path().join("qga.sock")));
    let opts = WatchOptions {
        agent_grace: Duration::from_millis(300),
        agent_call_limit: Duration::from_secs(1),
        poll: Duration::from_millis(10),
        ..WatchOptions::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(watch_boot(
        SerialLogTail::new(&path, 0),
        tracker.clone(),
        qga,
        None,
        opts,
        move |p| {
            let _ = tx.send(p.clone());
        },
    ));
    let mut seen = Vec::new();
    while !seen.last().is_some_and(BootPhase::is_terminal) {
        let next = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a verdict within 20 s")
            .unwrap();
        seen.push(next);
    }
    task.abort();
    assert_eq!(seen.first(), Some(&BootPhase::Firmware));
    assert_eq!(seen.last(), Some(&BootPhase::Ready));
    assert!(!tracker.lock().unwrap().agent_answered());
}

/// A scripted agent whose `cloud-init status` says `done`; counts the status questions.
fn agent_counting_status_calls() -> (
    crate::qga::tests::FakeAgent,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let execs = Arc::new(AtomicUsize::new(0));
    let count = execs.clone();
    let status =
        base64::engine::general_purpose::STANDARD.encode(br#"{"status": "done", "errors": []}"#);
    let agent = crate::qga::tests::fake_agent(
        false,
        true,
        Arc::new(move |cmd, _| {
            Some(match cmd {
                "guest-ping" => serde_json::json!({ "return": {} }),
                "guest-exec" => {
                    count.fetch_add(1, Ordering::SeqCst);
                    serde_json::json!({ "return": { "pid": 7 } })
                }
                "guest-exec-status" => serde_json::json!({ "return": {
                    "exited": true, "exitcode": 0, "out-data": status.clone(), "err-data": ""
                }}),
                _ => serde_json::json!({ "error": { "class": "CommandNotFound", "desc": cmd } }),
            })
        }),
    );
    (agent, execs)
}

/// Runs `watch_boot` over `log` with an agent that opens at once; returns the phases seen until
/// `until` holds (or 10 s pass).
async fn watch_with_open_agent(
    log: &str,
    agent: &crate::qga::tests::FakeAgent,
    opts: WatchOptions,
    until: impl Fn(&BootPhase) -> bool,
) -> (Vec<BootPhase>, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serial.log");
    std::fs::write(&path, log).unwrap();
    let qga = Arc::new(QgaClient::new(&agent.path).with_timeout(Duration::from_secs(2)));
    let opened = Arc::new(tokio::sync::Notify::new());
    opened.notify_one();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(watch_boot(
        SerialLogTail::new(&path, 0),
        Arc::new(Mutex::new(ReadinessTracker::new())),
        qga,
        Some(opened),
        opts,
        move |p| {
            let _ = tx.send(p.clone());
        },
    ));
    let mut seen = Vec::new();
    while !seen.last().is_some_and(&until) {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(p)) => seen.push(p),
            _ => break,
        }
    }
    task.abort();
    (seen, path, dir)
}

#[tokio::test]
async fn an_opening_agent_is_pinged_not_asked_while_the_console_shows_cloud_init() {
    use std::sync::atomic::Ordering;
    let (agent, execs) = agent_counting_status_calls();
    // The console shows cloud-init at work, not finished.
    let running: String = BOOT_OK
        .lines()
        .take_while(|l| !l.contains("finished at"))
        .map(|l| format!("{l}\n"))
        .collect();
    let opts = WatchOptions {
        poll: Duration::from_millis(10),
        silent_console: Duration::from_millis(50),
        agent_poll: Duration::from_millis(50),
        ..WatchOptions::default()
    };
    let (seen, _, _dir) = watch_with_open_agent(&running, &agent, opts, |p| {
        matches!(p, BootPhase::CloudInitRunning { .. })
    })
    .await;
    assert!(
        seen.iter()
            .any(|p| matches!(p, BootPhase::CloudInitRunning { .. })),
        "{seen:?}"
    );
    // Well past the silent-console delay: still no `cloud-init status` in the guest.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        execs.load(Ordering::SeqCst),
        0,
        "cloud-init status ran during the boot"
    );
}

#[tokio::test]
async fn a_console_silent_about_cloud_init_is_replaced_by_the_agent() {
    use std::sync::atomic::Ordering;
    let (agent, execs) = agent_counting_status_calls();
    let opts = WatchOptions {
        poll: Duration::from_millis(10),
        silent_console: Duration::from_millis(100),
        agent_poll: Duration::from_millis(50),
        ..WatchOptions::default()
    };
    // Only the kernel on the console (cloud-init writes elsewhere).
    let (seen, _, _dir) = watch_with_open_agent(
        "Linux version 6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org)\n",
        &agent,
        opts,
        BootPhase::is_terminal,
    )
    .await;
    assert_eq!(seen.last(), Some(&BootPhase::Ready), "{seen:?}");
    assert!(execs.load(Ordering::SeqCst) >= 1);
}
