use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::*;

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 9}, "package": ""}, "capabilities": ["oob", "some-future-capability"]}}"#;

/// A scripted QMP server on the other end of a socket pair.
struct FakeServer {
    lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    write: tokio::net::unix::OwnedWriteHalf,
}

impl FakeServer {
    async fn send(&mut self, v: &str) {
        self.write.write_all(v.as_bytes()).await.unwrap();
        self.write.write_all(b"\r\n").await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        let line = self.lines.next_line().await.unwrap().unwrap();
        serde_json::from_str(&line).unwrap()
    }

    /// Answers `qmp_capabilities`.
    async fn accept_capabilities(&mut self) {
        let cmd = self.recv().await;
        assert_eq!(cmd["execute"], "qmp_capabilities");
        let id = cmd["id"].clone();
        self.send(&json!({"return": {}, "id": id}).to_string())
            .await;
    }
}

async fn pair() -> (
    tokio::task::JoinHandle<Result<QmpClient, QmpError>>,
    FakeServer,
) {
    let (a, b) = UnixStream::pair().unwrap();
    let client = tokio::spawn(QmpClient::handshake(a, Duration::from_secs(2)));
    let (r, w) = b.into_split();
    let mut server = FakeServer {
        lines: BufReader::new(r).lines(),
        write: w,
    };
    server.send(GREETING).await;
    server.accept_capabilities().await;
    (client, server)
}

#[tokio::test]
async fn greeting_version_and_capabilities() {
    let (client, _server) = pair().await;
    let client = client.await.unwrap().unwrap();
    assert_eq!(
        client.version(),
        QemuVersion {
            major: 9,
            minor: 2,
            micro: 0
        }
    );
}

#[tokio::test]
async fn replies_are_matched_by_id_even_out_of_order() {
    let (client, mut server) = pair().await;
    let client = std::sync::Arc::new(client.await.unwrap().unwrap());
    let c1 = client.clone();
    let first = tokio::spawn(async move { c1.execute("query-a", None).await });
    let a = server.recv().await;
    let c2 = client.clone();
    let second = tokio::spawn(async move { c2.execute("query-b", Some(json!({"x": 1}))).await });
    let b = server.recv().await;
    assert_eq!(b["arguments"]["x"], 1);
    assert_ne!(a["id"], b["id"]);
    // Answer the second first, with an event in between and unknown fields everywhere.
    server
        .send(&json!({"return": {"who": "b", "new-field": [1]}, "id": b["id"]}).to_string())
        .await;
    server
        .send(r#"{"event": "BRAND_NEW_EVENT", "data": {"mode": "unheard-of"}, "timestamp": {"seconds": 1, "microseconds": 2}}"#)
        .await;
    server
        .send(&json!({"return": {"who": "a"}, "id": a["id"]}).to_string())
        .await;
    assert_eq!(second.await.unwrap().unwrap()["who"], "b");
    assert_eq!(first.await.unwrap().unwrap()["who"], "a");
}

#[tokio::test]
async fn events_are_broadcast_and_errors_typed() {
    let (client, mut server) = pair().await;
    let client = client.await.unwrap().unwrap();
    let mut events = client.subscribe();
    server
        .send(r#"{"event": "STOP", "timestamp": {"seconds": 3, "microseconds": 4}}"#)
        .await;
    let ev = events.recv().await.unwrap();
    assert_eq!(ev.name, "STOP");
    assert_eq!(ev.data, Value::Null);
    assert_eq!(ev.timestamp_us, Some(3_000_004));

    let call = tokio::spawn(async move {
        let r = client.execute("nope", None).await;
        (client, r)
    });
    let cmd = server.recv().await;
    server
        .send(
            &json!({"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}, "id": cmd["id"]})
                .to_string(),
        )
        .await;
    let (_client, r) = call.await.unwrap();
    match r {
        Err(QmpError::Command { command, class, .. }) => {
            assert_eq!(command, "nope");
            assert_eq!(class, "CommandNotFound");
        }
        other => panic!("expected a command error, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_lines_are_skipped() {
    let (client, mut server) = pair().await;
    let client = client.await.unwrap().unwrap();
    let call = tokio::spawn(async move { client.execute("query-x", None).await });
    let cmd = server.recv().await;
    server.send("this is not json").await;
    server.send("").await;
    server
        .send(&json!({"return": 7, "id": cmd["id"]}).to_string())
        .await;
    assert_eq!(call.await.unwrap().unwrap(), json!(7));
}

#[tokio::test]
async fn silent_server_times_out() {
    let (client, mut server) = pair().await;
    let client = client.await.unwrap().unwrap();
    let call = tokio::spawn(async move {
        client
            .execute_timeout("query-slow", None, Duration::from_millis(100))
            .await
    });
    let _ = server.recv().await;
    match call.await.unwrap() {
        Err(QmpError::Timeout { what, .. }) => assert_eq!(what, "query-slow"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn closing_fails_pending_and_later_calls() {
    let (client, mut server) = pair().await;
    let client = std::sync::Arc::new(client.await.unwrap().unwrap());
    let c = client.clone();
    let call = tokio::spawn(async move { c.execute("query-x", None).await });
    let _ = server.recv().await;
    drop(server);
    assert!(matches!(call.await.unwrap(), Err(QmpError::Closed)));
    client.closed().await;
    assert!(client.is_closed());
    assert!(matches!(
        client.execute("query-y", None).await,
        Err(QmpError::Closed)
    ));
}

#[tokio::test]
async fn a_non_qmp_greeting_is_a_protocol_error() {
    let (a, b) = UnixStream::pair().unwrap();
    let (_r, mut w) = b.into_split();
    w.write_all(b"{\"hello\": 1}\n").await.unwrap();
    let r = QmpClient::handshake(a, Duration::from_secs(1)).await;
    assert!(matches!(r, Err(QmpError::Protocol(_))), "{r:?}");
}

#[tokio::test]
async fn no_greeting_times_out() {
    let (a, _b) = UnixStream::pair().unwrap();
    let r = QmpClient::handshake(a, Duration::from_millis(100)).await;
    assert!(matches!(r, Err(QmpError::Timeout { .. })), "{r:?}");
}

/// Against a real `qemu-system-x86_64 -machine none`: handshake, commands, errors, events, quit.
#[tokio::test]
async fn real_qemu_session() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp.sock");
    let mut qemu = tokio::process::Command::new(
        std::env::var_os("LQ_QEMU").unwrap_or_else(|| "qemu-system-x86_64".into()),
    )
    .args([
        "-machine",
        "none",
        "-accel",
        "tcg",
        "-nodefaults",
        "-display",
        "none",
        "-qmp",
    ])
    .arg(format!("unix:{},server=on,wait=off", sock.display()))
    .stdin(Stdio::null())
    .kill_on_drop(true)
    .spawn()
    .expect("qemu-system-x86_64 runs");

    let client =
        QmpClient::connect_with_retry(&sock, Duration::from_secs(10), Duration::from_secs(20))
            .await
            .unwrap();
    assert!(client.version().major >= 7);
    assert_eq!(client.query_status().await.unwrap(), "running");
    let v = client.execute("query-version", None).await.unwrap();
    assert!(v["qemu"]["major"].as_u64().unwrap() >= 7);

    match client.execute("no-such-command", None).await {
        Err(QmpError::Command { class, .. }) => assert_eq!(class, "CommandNotFound"),
        other => panic!("expected CommandNotFound, got {other:?}"),
    }

    let mut events = client.subscribe();
    client.execute("stop", None).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.name, "STOP");
    assert_eq!(client.query_status().await.unwrap(), "paused");
    client.execute("cont", None).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.name, "RESUME");

    // `quit` answers, announces SHUTDOWN and closes the socket.
    let _ = client.execute("quit", None).await;
    let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.name, "SHUTDOWN");
    tokio::time::timeout(Duration::from_secs(5), client.closed())
        .await
        .unwrap();
    assert!(matches!(
        client.execute("query-status", None).await,
        Err(QmpError::Closed)
    ));
    let status = qemu.wait().await.unwrap();
    assert!(status.success(), "{status}");
}
