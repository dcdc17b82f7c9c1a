//! The interactive serial console (NodeConsoleService.AttachConsole) through the daemon binary,
//! with the tiny test guest under TCG: its /init answers each console line with
//! `LQ-TINY-GUEST ECHO <line>`. One VM: typed bytes reach the guest and its answer comes back,
//! a second session is refused, the serial log still records everything, a VM without a console
//! socket and a stopped VM are refused with a reason, a client that reads nothing does not hold
//! the guest up, a daemon restart ends the session and the new daemon serves the console again,
//! stopping the VM ends the session, and the daemon's log never holds what was typed.

mod common;

use common::{Node, QEMU, cloud_vm, eventually};
use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use pb::node_console_service_client::NodeConsoleServiceClient;
use pb::{console_input, console_output};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

const ID: &str = "c0c0a7e5-1b2d-4e3f-8a9b-0c1d2e3f4a5b";
const READY: &str = "LQ-TINY-GUEST READY";

async fn console_client(node: &Node) -> NodeConsoleServiceClient<Channel> {
    let channel = Endpoint::from_shared(format!("unix:{}", node.socket().display()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    NodeConsoleServiceClient::new(channel)
}

/// An open session: the sender of keystrokes and the daemon's output.
struct Session {
    keys: mpsc::Sender<pb::ConsoleInput>,
    out: Streaming<pb::ConsoleOutput>,
}

fn attach_msg(vm_id: &str, replay_bytes: u32) -> pb::ConsoleInput {
    pb::ConsoleInput {
        input: Some(console_input::Input::Attach(pb::ConsoleAttach {
            vm_id: vm_id.into(),
            replay_bytes,
        })),
    }
}

async fn attach_with(
    client: &mut NodeConsoleServiceClient<Channel>,
    first: pb::ConsoleInput,
) -> Result<Session, Status> {
    let (keys, rx) = mpsc::channel(16);
    keys.send(first).await.unwrap();
    let out = client
        .attach_console(ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok(Session { keys, out })
}

async fn attach(
    client: &mut NodeConsoleServiceClient<Channel>,
    vm_id: &str,
    replay_bytes: u32,
) -> Result<Session, Status> {
    attach_with(client, attach_msg(vm_id, replay_bytes)).await
}

/// A session on the VM's console, past its `attached` message.
async fn open_session(console: &mut NodeConsoleServiceClient<Channel>) -> Session {
    let mut s = attach(console, ID, 0).await.unwrap();
    assert!(matches!(
        s.next().await.and_then(|m| m.output),
        Some(console_output::Output::Attached(_))
    ));
    s
}

impl Session {
    async fn type_text(&self, text: &str) {
        let msg = pb::ConsoleInput {
            input: Some(console_input::Input::Data(text.as_bytes().to_vec())),
        };
        self.keys.send(msg).await.unwrap();
    }

    /// The next message, within 30 s.
    async fn next(&mut self) -> Option<pb::ConsoleOutput> {
        tokio::time::timeout(Duration::from_secs(30), self.out.message())
            .await
            .expect("console output within 30 s")
            .expect("the console stream ends with OK")
    }

    /// Output bytes until `needle` appears (panics after 60 s or at the end of the stream).
    async fn read_until(&mut self, needle: &str) -> String {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(m) = self.out.message().await.unwrap() {
                if let Some(console_output::Output::Data(d)) = m.output {
                    seen.extend_from_slice(&d);
                    if String::from_utf8_lossy(&seen).contains(needle) {
                        return true;
                    }
                }
            }
            false
        })
        .await;
        let text = String::from_utf8_lossy(&seen).into_owned();
        assert!(
            matches!(found, Ok(true)),
            "{needle:?} not seen; console:\n{text}"
        );
        text
    }
}

async fn serial(client: &mut NodeClient) -> String {
    common::serial_log(client, ID).await
}

fn refused(r: Result<Session, Status>, code: Code, words: &str) {
    let e = r.err().expect("the attach is refused");
    assert_eq!(e.code(), code, "{e:?}");
    assert!(
        e.message().contains(words),
        "{:?} lacks {words:?}",
        e.message()
    );
}

#[tokio::test]
async fn typing_into_the_serial_console_reaches_the_guest() {
    let _one_guest = QEMU.lock().await;
    let mut node = Node::new();
    let image = node.tiny_image();
    node.start();
    let mut client = node.client().await;
    let mut console = console_client(&node).await;
    client
        .create_vm(cloud_vm(ID, "echo1", &image))
        .await
        .unwrap();

    // Malformed first messages and unknown or stopped VMs.
    refused(
        attach(&mut console, "not-an-id", 0).await,
        Code::InvalidArgument,
        "attach.vm_id",
    );
    let data_first = pb::ConsoleInput {
        input: Some(console_input::Input::Data(b"x".to_vec())),
    };
    refused(
        attach_with(&mut console, data_first).await,
        Code::InvalidArgument,
        "first message must be `attach`",
    );
    refused(
        attach(&mut console, "0f0f0f0f-0000-4000-8000-000000000000", 0).await,
        Code::NotFound,
        "VM not found",
    );
    refused(
        attach(&mut console, ID, 0).await,
        Code::FailedPrecondition,
        "is stopped",
    );

    client
        .start_vm(pb::VmIdRequest { vm_id: ID.into() })
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(90), async || serial(&mut client)
            .await
            .contains(READY))
        .await,
        "the guest booted; serial:\n{}",
        serial(&mut client).await
    );

    // Attach with a replay of the log's end, type a line, read the guest's answer.
    let mut s = attach(&mut console, ID, 4096).await.unwrap();
    let Some(console_output::Output::Attached(a)) = s.next().await.and_then(|m| m.output) else {
        panic!("the first message is `attached`");
    };
    assert_eq!(a.vm_id, ID);
    assert!(a.replay_bytes > 0 && a.replay_bytes <= 4096, "{a:?}");
    let replay = s.read_until(READY).await;
    assert!(replay.len() <= 4096);
    s.type_text("hello-console\r").await;
    s.read_until("LQ-TINY-GUEST ECHO hello-console").await;

    // One session at a time.
    refused(
        attach(&mut console, ID, 0).await,
        Code::FailedPrecondition,
        &format!("console of VM {ID} is already attached by another client"),
    );

    // The serial log recorded the exchange while the socket was attached.
    assert!(
        eventually(Duration::from_secs(10), async || serial(&mut client)
            .await
            .contains("LQ-TINY-GUEST ECHO hello-console"))
        .await
    );

    // Detaching frees the console (the daemon notices the cancelled call).
    drop(s);
    // A VM whose QEMU has no console socket (started by an older daemon) is refused with the
    // reason; the socket moved aside stands for that.
    let sock = node.run.join("vms").join(ID).join("serial.sock");
    let moved = sock.with_extension("sock.moved");
    std::fs::rename(&sock, &moved).unwrap();
    let mut older = None;
    assert!(
        eventually(Duration::from_secs(10), async || {
            match attach(&mut console, ID, 0).await {
                Err(e) if e.message().contains("already attached") => false,
                r => {
                    older = Some(r);
                    true
                }
            }
        })
        .await,
        "the first session was released"
    );
    refused(
        older.unwrap(),
        Code::FailedPrecondition,
        "started by an older limiquantix-node",
    );
    std::fs::rename(&moved, &sock).unwrap();

    // A second session works.
    let mut s = open_session(&mut console).await;
    s.type_text("again\n").await;
    s.read_until("LQ-TINY-GUEST ECHO again").await;

    // A client that stops reading does not hold the guest up: ~400 KB of echoes (more than the
    // socket and HTTP/2 buffers hold) reach serial.log while nothing is read, then all of it
    // arrives, gathered into fewer messages.
    let lines = 400;
    let text: String = (0..lines)
        .map(|i| format!("line-{i:03}-{}\n", "x".repeat(500)))
        .collect();
    let t0 = std::time::Instant::now();
    s.type_text(&text).await;
    let last = format!("LQ-TINY-GUEST ECHO line-{:03}-", lines - 1);
    assert!(
        eventually(Duration::from_secs(120), async || serial(&mut client)
            .await
            .contains(&last))
        .await,
        "the guest printed everything while the client read nothing"
    );
    let flood = t0.elapsed();
    let seen = s.read_until(&last).await;
    for i in [0, lines / 2, lines - 1] {
        assert!(
            seen.contains(&format!("LQ-TINY-GUEST ECHO line-{i:03}-")),
            "line {i}"
        );
    }
    eprintln!("{lines} lines echoed in {flood:?} with the client not reading");

    // A daemon shutdown ends the session at once (UNAVAILABLE) instead of holding the drain; the
    // restarted daemon serves the console of the VM it re-adopted.
    // (The stop runs off the runtime, so this client answers the daemon's HTTP/2 goodbye.)
    let t0 = std::time::Instant::now();
    let (mut node, stopped) = tokio::task::spawn_blocking(move || {
        let status = node.terminate();
        (node, status)
    })
    .await
    .unwrap();
    assert!(stopped.success());
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "shutdown took {:?}; daemon log:\n{}",
        t0.elapsed(),
        node.log_text()
    );
    let end = loop {
        match s.out.message().await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert!(
        matches!(&end, Err(e) if e.code() == Code::Unavailable),
        "{end:?}"
    );
    drop(s);
    node.start();
    let mut client = node.client().await;
    let mut console = console_client(&node).await;
    let mut s = open_session(&mut console).await;
    s.type_text("after-restart\n").await;
    s.read_until("LQ-TINY-GUEST ECHO after-restart").await;

    // Stopping the VM ends the session cleanly.
    client
        .stop_vm(pb::StopVmRequest {
            vm_id: ID.into(),
            timeout_seconds: 60,
        })
        .await
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match s.out.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the session ends when the VM stops");
    assert!(matches!(end, Ok(None)), "ends with OK: {end:?}");
    assert!(
        !sock.exists(),
        "the console socket is removed with the VM's QEMU"
    );
    refused(
        attach(&mut console, ID, 0).await,
        Code::FailedPrecondition,
        "is stopped",
    );
    // The daemon logged the sessions, never what was typed.
    let log = node.log_text();
    assert!(log.contains("console attached"), "{log}");
    assert!(
        !log.contains("hello-console"),
        "console bytes in the daemon log"
    );
}
