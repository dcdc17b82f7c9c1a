//! Lifecycle through the daemon binary with a real guest under TCG: the tiny test guest on a
//! BIOS-bootable disk used as a cloud image (an overlay on it, the default seed attached after
//! it), started, paused, resumed, rebooted, followed across a daemon restart, stopped through
//! ACPI, force-stopped and deleted, with the events observed on StreamEvents.

mod common;

use common::{Node, QEMU, cloud_vm, eventually};
use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;

const ID: &str = "3e2d1c0b-a987-4654-8321-0fedcba98765";
const BOOT: &str = "LQ-TINY-GUEST BOOT";
const READY: &str = "LQ-TINY-GUEST READY";

/// Collects StreamEvents into a channel.
async fn events(client: &mut NodeClient) -> mpsc::UnboundedReceiver<pb::NodeEvent> {
    let mut stream = client.stream_events(()).await.unwrap().into_inner();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(e)) = stream.next().await {
            if tx.send(e).is_err() {
                break;
            }
        }
    });
    rx
}

async fn expect_event(
    rx: &mut mpsc::UnboundedReceiver<pb::NodeEvent>,
    kind: pb::EventType,
) -> pb::NodeEvent {
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let e = rx.recv().await.expect("event stream ended");
            if e.r#type == kind as i32 {
                return e;
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {kind:?} event within 60 s"))
}

async fn state(client: &mut NodeClient) -> pb::PowerState {
    let s = client
        .get_vm_status(pb::VmIdRequest { vm_id: ID.into() })
        .await
        .unwrap()
        .into_inner();
    pb::PowerState::try_from(s.state).unwrap()
}

async fn serial(client: &mut NodeClient) -> String {
    common::serial_log(client, ID).await
}

fn pid(node: &Node) -> i32 {
    let p: PathBuf = node.run.join("vms").join(ID).join("qemu.pid");
    std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
}

fn alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn id() -> pb::VmIdRequest {
    pb::VmIdRequest { vm_id: ID.into() }
}

#[tokio::test]
async fn a_cloud_image_vm_lives_through_every_verb_and_a_daemon_restart() {
    let _one_guest = QEMU.lock().await;
    let mut node = Node::new();
    let image = node.tiny_image();
    std::fs::write(node.images.join("media.iso"), vec![0u8; 64 * 1024]).unwrap();
    node.start();
    let mut client = node.client().await;
    let mut ev = events(&mut client).await;

    let mut req = cloud_vm(ID, "tiny1", &image);
    req.spec.as_mut().unwrap().cdroms = vec![pb::CdromSpec {
        id: "media".into(),
        ..Default::default()
    }];
    client.create_vm(req).await.unwrap();
    expect_event(&mut ev, pb::EventType::VmCreated).await;

    client.start_vm(id()).await.unwrap();
    let started = expect_event(&mut ev, pb::EventType::VmStarted).await;
    assert_eq!(started.vm_id, ID);
    assert_eq!(state(&mut client).await, pb::PowerState::Running);

    // The QEMU command line: the overlay disk boots first, the seed CD-ROM sits after it.
    let first = pid(&node);
    let cmdline = std::fs::read(format!("/proc/{first}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let device = |id: &str| {
        args.iter()
            .position(|a| {
                a.starts_with('{')
                    && a.contains(&format!("\"id\":\"{id}\""))
                    && a.contains("\"driver\"")
            })
            .unwrap_or_else(|| panic!("no device {id} in {args:?}"))
    };
    let disk = device("disk0");
    let seed = device("seed");
    assert!(args[disk].contains("\"bootindex\":1"), "{}", args[disk]);
    assert!(disk < seed, "the seed comes after the disk");
    assert!(!args[seed].contains("bootindex"), "{}", args[seed]);
    assert!(args[seed].contains("scsi-cd"), "{}", args[seed]);

    assert!(
        eventually(Duration::from_secs(90), async || serial(&mut client)
            .await
            .contains(READY))
        .await,
        "the guest booted from its disk; serial:\n{}",
        serial(&mut client).await
    );
    let console = client.get_console(id()).await.unwrap().into_inner();
    assert_eq!(console.r#type, "vnc");
    assert!(console.port >= 5900, "{console:?}");

    client.pause_vm(id()).await.unwrap();
    expect_event(&mut ev, pb::EventType::VmPaused).await;
    assert_eq!(state(&mut client).await, pb::PowerState::Paused);
    client.resume_vm(id()).await.unwrap();
    expect_event(&mut ev, pb::EventType::VmResumed).await;

    let media = node.images.join("media.iso").display().to_string();
    client
        .change_media(pb::ChangeMediaRequest {
            vm_id: ID.into(),
            device: "media".into(),
            iso_path: media,
        })
        .await
        .unwrap();
    let err = client
        .change_media(pb::ChangeMediaRequest {
            vm_id: ID.into(),
            device: "media".into(),
            iso_path: "/etc/passwd".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    client
        .change_media(pb::ChangeMediaRequest {
            vm_id: ID.into(),
            device: "media".into(),
            iso_path: String::new(),
        })
        .await
        .unwrap();

    client.reboot_vm(id()).await.unwrap();
    expect_event(&mut ev, pb::EventType::VmRebooted).await;
    assert!(
        eventually(Duration::from_secs(90), async || serial(&mut client)
            .await
            .matches(READY)
            .count()
            >= 2)
        .await,
        "the guest booted again after the reset"
    );

    // Restart the daemon: the guest keeps running, unrestarted, and stays controllable.
    drop(ev);
    drop(client);
    assert!(node.terminate().success());
    assert!(alive(first), "QEMU survives the daemon's stop");
    node.start();
    let mut client = node.client().await;
    let mut ev = events(&mut client).await;
    assert_eq!(state(&mut client).await, pb::PowerState::Running);
    assert_eq!(pid(&node), first);
    assert_eq!(
        serial(&mut client).await.matches(BOOT).count(),
        2,
        "the guest was not restarted"
    );

    // Graceful stop: the guest powers off on the ACPI button.
    client
        .stop_vm(pb::StopVmRequest {
            vm_id: ID.into(),
            timeout_seconds: 60,
        })
        .await
        .unwrap();
    expect_event(&mut ev, pb::EventType::VmStopped).await;
    assert_eq!(state(&mut client).await, pb::PowerState::Stopped);
    assert!(eventually(Duration::from_secs(10), async || !alive(first)).await);

    client.start_vm(id()).await.unwrap();
    expect_event(&mut ev, pb::EventType::VmStarted).await;
    client.force_stop_vm(id()).await.unwrap();
    expect_event(&mut ev, pb::EventType::VmStopped).await;
    assert_eq!(state(&mut client).await, pb::PowerState::Stopped);
    client.start_vm(id()).await.unwrap();
    expect_event(&mut ev, pb::EventType::VmStarted).await;
    let second = pid(&node);

    let logs = client
        .get_vm_logs(pb::GetVmLogsRequest {
            vm_id: ID.into(),
            lines: 2,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        logs.serial_lines_returned <= 2 && logs.serial_truncated,
        "{logs:?}"
    );

    // Deleting a running VM forces it off first (the control plane's forced delete sends a
    // plain DeleteVM and forgets the VM): no QEMU and no VM files are left.
    client.delete_vm(id()).await.unwrap();
    expect_event(&mut ev, pb::EventType::VmDeleted).await;
    assert!(!alive(second), "QEMU of the deleted VM is gone");
    assert!(node.vm_dirs().is_empty(), "{:?}", node.vm_dirs());
    assert!(
        image.exists() && limiquantix_test_support::tiny_guest_disk().exists(),
        "the image is never deleted"
    );
    node.terminate();
}
