use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use super::*;

/// Answers one command (name, arguments); `None` leaves it unanswered.
pub(crate) type Handler = Arc<dyn Fn(&str, &Value) -> Option<Value> + Send + Sync>;

/// A scripted agent on a real Unix socket. Before its sync answer it writes stale output from
/// an "earlier client" when `noisy`; it answers commands through `handler` (`None` = silence).
pub(crate) struct FakeAgent {
    _dir: tempfile::TempDir,
    /// Its socket.
    pub(crate) path: PathBuf,
    connections: Arc<AtomicUsize>,
}

pub(crate) fn fake_agent(noisy: bool, answer_sync: bool, handler: Handler) -> FakeAgent {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qga.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let text: Vec<u8> = line.iter().copied().filter(|&b| b != 0xFF).collect();
                    let Ok(msg) = serde_json::from_slice::<Value>(&text) else {
                        continue;
                    };
                    let cmd = msg["execute"].as_str().unwrap_or_default().to_owned();
                    if cmd == "guest-sync-delimited" {
                        if !answer_sync {
                            continue;
                        }
                        let id = &msg["arguments"]["id"];
                        let mut out = Vec::new();
                        if noisy {
                            out.extend(b"{\"return\": {\"stale\": true}}\n{\"retu");
                            out.extend(b"\xff{\"return\": 12345}\n");
                        }
                        out.push(0xFF);
                        out.extend(json!({ "return": id }).to_string().into_bytes());
                        out.push(b'\n');
                        w.write_all(&out).await.unwrap();
                        continue;
                    }
                    if let Some(reply) = handler(&cmd, &msg["arguments"]) {
                        let mut out = reply.to_string().into_bytes();
                        out.push(b'\n');
                        if w.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    FakeAgent {
        _dir: dir,
        path,
        connections,
    }
}

fn guest_like() -> Handler {
    Arc::new(|cmd, args| {
        Some(match cmd {
            "guest-ping" => json!({ "return": {} }),
            "guest-info" => json!({ "return": {
                "version": "7.2.0",
                "supported_commands": [
                    { "name": "guest-ping", "enabled": true, "success-response": true },
                    { "name": "guest-exec", "enabled": true, "success-response": true, "future": 1 }
                ]
            }}),
            "guest-get-host-name" => json!({ "return": { "host-name": "web1" } }),
            "guest-get-osinfo" => json!({ "return": {
                "id": "debian", "pretty-name": "Debian GNU/Linux 12 (bookworm)",
                "kernel-release": "6.1.0-56-cloud-amd64", "machine": "x86_64", "variant": "cloud"
            }}),
            "guest-network-get-interfaces" => json!({ "return": [
                { "name": "lo", "ip-addresses": [
                    { "ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8 } ] },
                { "name": "eth0", "hardware-address": "52:54:00:12:34:56",
                  "statistics": { "rx-bytes": 1 },
                  "ip-addresses": [
                    { "ip-address-type": "ipv4", "ip-address": "10.0.2.15", "prefix": 24 },
                    { "ip-address-type": "ipv6", "ip-address": "fe80::1", "prefix": 64 } ] }
            ]}),
            "guest-exec" => {
                assert_eq!(args["path"], "/bin/echo");
                assert_eq!(args["capture-output"], true);
                json!({ "return": { "pid": 42 } })
            }
            "guest-exec-status" => json!({ "return": {
                "exited": true, "exitcode": 0,
                "out-data": "aGVsbG8K", "err-data": ""
            }}),
            "guest-file-open" => json!({ "return": 7 }),
            "guest-file-read" => {
                json!({ "return": { "count": 5, "buf-b64": "aGVsbG8=", "eof": true } })
            }
            "guest-file-close" => json!({ "return": {} }),
            "guest-fail" => json!({ "error": { "class": "GenericError", "desc": "nope" } }),
            "guest-hang" => return None,
            _ => json!({ "error": { "class": "CommandNotFound", "desc": cmd } }),
        })
    })
}

#[tokio::test]
async fn resync_drops_stale_output_then_commands_work() {
    let agent = fake_agent(true, true, guest_like());
    let qga = QgaClient::new(&agent.path);
    qga.ping().await.unwrap();
    assert_eq!(qga.host_name().await.unwrap(), "web1");

    let info = qga.info().await.unwrap();
    assert_eq!(info.version, "7.2.0");
    assert_eq!(info.supported_commands.len(), 2);

    let os = qga.os_info().await.unwrap();
    assert_eq!(os.id.as_deref(), Some("debian"));
    assert_eq!(os.machine.as_deref(), Some("x86_64"));
    assert_eq!(os.version, None);

    let ifs = qga.network_interfaces().await.unwrap();
    assert_eq!(ifs.len(), 2);
    assert_eq!(
        ifs[1].hardware_address.as_deref(),
        Some("52:54:00:12:34:56")
    );
    assert_eq!(ifs[1].ip_addresses[0].ip_address, "10.0.2.15");
    assert_eq!(ifs[1].ip_addresses[1].ip_address_type, "ipv6");
    assert!(ifs[0].hardware_address.is_none());

    // One connection served every call.
    assert_eq!(agent.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn exec_decodes_base64_output() {
    let agent = fake_agent(false, true, guest_like());
    let qga = QgaClient::new(&agent.path);
    let st = qga
        .exec_wait("/bin/echo", &["hello"], Duration::from_secs(5))
        .await
        .unwrap();
    assert!(st.exited);
    assert_eq!(st.exit_code, Some(0));
    assert_eq!(st.stdout, b"hello\n");
    assert!(st.stderr.is_empty());
    assert_eq!(qga.read_file("/etc/hostname", 100).await.unwrap(), b"hello");
    assert_eq!(qga.read_file("/etc/hostname", 3).await.unwrap(), b"hel");
}

#[tokio::test]
async fn agent_errors_are_typed() {
    let agent = fake_agent(false, true, guest_like());
    let qga = QgaClient::new(&agent.path);
    match qga.execute("guest-fail", None).await {
        Err(QgaError::Command {
            command,
            class,
            desc,
        }) => {
            assert_eq!(
                (command.as_str(), class.as_str(), desc.as_str()),
                ("guest-fail", "GenericError", "nope")
            );
        }
        other => panic!("expected a command error, got {other:?}"),
    }
    // The connection is still good after an error reply.
    qga.ping().await.unwrap();
    assert_eq!(agent.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn missing_socket_is_agent_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let qga = QgaClient::new(dir.path().join("absent.sock"));
    assert!(matches!(
        qga.ping().await,
        Err(QgaError::AgentUnavailable { .. })
    ));
}

#[tokio::test]
async fn silent_agent_is_unavailable_not_a_hang() {
    let agent = fake_agent(false, false, guest_like());
    let qga = QgaClient::new(&agent.path).with_sync_timeout(Duration::from_millis(200));
    let t = std::time::Instant::now();
    let err = qga.ping().await.unwrap_err();
    assert!(matches!(err, QgaError::AgentUnavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("guest-sync-delimited"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_timed_out_command_reconnects_and_resyncs() {
    let agent = fake_agent(true, true, guest_like());
    let qga = QgaClient::new(&agent.path).with_timeout(Duration::from_millis(200));
    match qga.execute("guest-hang", None).await {
        Err(QgaError::Timeout { command, .. }) => assert_eq!(command, "guest-hang"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    qga.ping().await.unwrap();
    assert_eq!(agent.connections.load(Ordering::SeqCst), 2);
}

#[test]
fn exec_status_parsing() {
    let st = parse_exec_status(&json!({ "exited": false })).unwrap();
    assert!(!st.exited && st.exit_code.is_none());
    let st =
        parse_exec_status(&json!({ "exited": true, "signal": 9, "out-truncated": true })).unwrap();
    assert_eq!(st.signal, Some(9));
    assert!(st.truncated);
    assert!(matches!(
        parse_exec_status(&json!({ "exited": true, "out-data": "!!" })),
        Err(QgaError::Decode { .. })
    ));
    assert!(matches!(
        parse_exec_status(&json!({})),
        Err(QgaError::Decode { .. })
    ));
}

/// A guest with one in-memory file behind handle 7, a log of the commands it was sent, and
/// a `guest-file-read` that fails when `fail_reads`.
fn file_guest(
    file: Arc<std::sync::Mutex<(Vec<u8>, usize)>>,
    log: Arc<std::sync::Mutex<Vec<String>>>,
    fail_reads: bool,
) -> Handler {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    Arc::new(move |cmd, args| {
        log.lock().unwrap().push(cmd.to_owned());
        let mut f = file.lock().unwrap();
        Some(match cmd {
            "guest-file-open" => {
                match args["mode"].as_str().unwrap() {
                    "wb" => *f = (Vec::new(), 0),
                    "ab" => f.1 = f.0.len(),
                    _ => f.1 = 0,
                }
                json!({ "return": 7 })
            }
            "guest-file-seek" => {
                let off = args["offset"].as_i64().unwrap() as usize;
                f.1 = if args["whence"] == "end" {
                    f.0.len() + off
                } else {
                    off
                };
                json!({ "return": { "position": f.1, "eof": false } })
            }
            "guest-file-read" if fail_reads => {
                json!({ "error": { "class": "GenericError", "desc": "read failed" } })
            }
            "guest-file-read" => {
                let n = args["count"].as_u64().unwrap() as usize;
                let end = (f.1 + n).min(f.0.len());
                let chunk = f.0[f.1..end].to_vec();
                f.1 = end;
                let eof = end == f.0.len();
                json!({ "return": { "count": chunk.len(), "buf-b64": b64.encode(&chunk), "eof": eof } })
            }
            "guest-file-write" => {
                let data = b64.decode(args["buf-b64"].as_str().unwrap()).unwrap();
                assert_eq!(args["count"].as_u64(), Some(data.len() as u64));
                assert!(data.len() <= FILE_CHUNK, "chunks stay small");
                f.0.extend(&data);
                json!({ "return": { "count": data.len(), "eof": false } })
            }
            "guest-file-flush" | "guest-file-close" => json!({ "return": {} }),
            _ => json!({ "error": { "class": "CommandNotFound", "desc": cmd } }),
        })
    })
}

#[tokio::test]
async fn files_move_in_chunks_and_the_handle_is_always_closed() {
    let file = Arc::new(std::sync::Mutex::new((Vec::new(), 0)));
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let agent = fake_agent(false, true, file_guest(file.clone(), log.clone(), false));
    let qga = QgaClient::new(&agent.path);
    let data: Vec<u8> = (0..FILE_CHUNK * 2 + 100).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        qga.write_all("/f", &data, false).await.unwrap(),
        data.len() as u64
    );
    let writes = log
        .lock()
        .unwrap()
        .iter()
        .filter(|c| *c == "guest-file-write")
        .count();
    assert_eq!(writes, 3);
    assert_eq!(log.lock().unwrap().last().unwrap(), "guest-file-close");
    assert_eq!(qga.write_all("/f", b"tail", true).await.unwrap(), 4);
    assert_eq!(file.lock().unwrap().0.len(), data.len() + 4);

    let (all, size, eof) = qga.read_range("/f", 0, 1 << 20).await.unwrap();
    assert_eq!(
        (&all[..data.len()], size, eof),
        (&data[..], data.len() as u64 + 4, true)
    );
    let (part, _, eof) = qga.read_range("/f", 10, 5).await.unwrap();
    assert_eq!((&part[..], eof), (&data[10..15], false));
    let (none, _, eof) = qga.read_range("/f", size + 10, 5).await.unwrap();
    assert!(none.is_empty() && eof);

    let failing = fake_agent(false, true, file_guest(file, log.clone(), true));
    let qga = QgaClient::new(&failing.path);
    log.lock().unwrap().clear();
    let err = qga.read_range("/f", 0, 10).await.unwrap_err();
    assert!(
        matches!(err, QgaError::Command { ref desc, .. } if desc == "read failed"),
        "{err}"
    );
    assert_eq!(
        log.lock().unwrap().last().unwrap(),
        "guest-file-close",
        "closed on error too"
    );
}

#[test]
fn exec_arguments_are_an_argv_with_base64_input() {
    let a = exec::exec_arguments("/bin/cat", &["-n".into()], &["A=1".into()], Some(b"hi"));
    assert_eq!(
        a,
        json!({ "path": "/bin/cat", "arg": ["-n"], "env": ["A=1"], "input-data": "aGk=",
                "capture-output": true })
    );
    let bare = exec::exec_arguments("uname", &[], &[], None);
    assert_eq!(bare, json!({ "path": "uname", "capture-output": true }));
    let st = parse_exec_status(&json!({ "exited": true, "exitcode": 0, "err-truncated": true }))
        .unwrap();
    assert!(st.stderr_truncated && !st.stdout_truncated && st.truncated);
}

#[test]
fn freeze_time_and_shutdown_messages() {
    assert_eq!(
        fsfreeze::freeze_command(&[]),
        ("guest-fsfreeze-freeze", None)
    );
    let (cmd, args) = fsfreeze::freeze_command(&["/".into(), "/srv".into()]);
    assert_eq!(cmd, "guest-fsfreeze-freeze-list");
    assert_eq!(args, Some(json!({ "mountpoints": ["/", "/srv"] })));
    assert_eq!(time::set_time_arguments(5), json!({ "time": 5 }));
    assert_eq!(
        shutdown::shutdown_message("reboot"),
        json!({ "execute": "guest-shutdown", "arguments": { "mode": "reboot" } })
    );
    assert!(shutdown::shutdown_answer(&json!({ "return": {} })).is_ok());
    let refused = json!({ "error": { "class": "CommandDisabled", "desc": "disabled" } });
    assert!(matches!(
        shutdown::shutdown_answer(&refused),
        Err(QgaError::Command { class, .. }) if class == "CommandDisabled"
    ));
}

#[tokio::test]
async fn shutdown_silence_is_success_and_a_refusal_is_an_error() {
    let silent = fake_agent(false, true, Arc::new(|_, _| None));
    QgaClient::new(&silent.path)
        .shutdown("powerdown")
        .await
        .unwrap();
    let refusing = fake_agent(
        false,
        true,
        Arc::new(|_, _| Some(json!({ "error": { "class": "CommandDisabled", "desc": "no" } }))),
    );
    let err = QgaClient::new(&refusing.path)
        .shutdown("halt")
        .await
        .unwrap_err();
    assert!(
        matches!(err, QgaError::Command { ref desc, .. } if desc == "no"),
        "{err}"
    );
}
