//! The node as the LimiQuantix control plane uses it, played from the control plane's own
//! code: its Connect JSON routes (the fake in `fake_cp`, answering as the Go handlers do), and
//! a plaintext gRPC client calling the node as `daemon_client.go` does — InitStoragePool on
//! connect, CreateVM exactly as `convertToNodeDaemonCreateRequest` builds it from the UI
//! wizard's request, StartVM, GetConsole (then raw RFB to host:port), ChangeMedia with `sd<x>`
//! names and pool-relative ISO paths, StopVM with its 30 s timeout, the forced delete (a plain
//! DeleteVM of a running VM). The real daemon binary, real QEMU under TCG, the project's test
//! image with real cloud-init reaching ready. A connection from outside the allow-list is
//! closed before any byte of HTTP/2.

mod common;
mod fake_cp;

use common::Node;
use fake_cp::FakeCp;
use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The control plane's ids: the VM and its disk (UUIDs from the database and the wizard's
/// `crypto.randomUUID()`), its pool and its network.
const VM_ID: &str = "8c0f2d3e-4b5a-4c6d-9e7f-0a1b2c3d4e5f";
const DISK_ID: &str = "1e2d3c4b-5a69-4788-97a6-b5c4d3e2f1a0";
const POOL_ID: &str = "a0b1c2d3-e4f5-4617-8293-a4b5c6d7e8f9";
const NETWORK_ID: &str = "5b0c3c55-4a8e-4f43-8a4e-0a0b0c0d0e0f";
/// The node's management address: a loopback address other than 127.0.0.1, so the test tells
/// it from the default.
const MANAGEMENT: &str = "127.0.0.2";
/// Boot to cloud-init done under TCG: about a minute on a quiet machine.
const BOOT: Duration = Duration::from_secs(360);

/// The UI wizard's cloud-config for a cloud image (`VMCreationWizard.tsx`): user `ubuntu` with a
/// password through the deprecated `chpasswd.list`, packages, `installAgent` off (the image has
/// no network to fetch the agent from).
const USER_DATA: &str = "#cloud-config
hostname: cp-vm
fqdn: cp-vm.local
manage_etc_hosts: true
timezone: UTC
users:
  - name: ubuntu
    groups: [sudo, adm]
    sudo: ALL=(ALL) NOPASSWD:ALL
    shell: /bin/bash
    lock_passwd: false
ssh_pwauth: true
chpasswd:
  expire: false
  list:
    - ubuntu:s3cret-pw
package_update: true
packages:
  - qemu-guest-agent
runcmd:
  - systemctl enable qemu-guest-agent
  - systemctl start qemu-guest-agent
";

/// CreateVM as `convertToNodeDaemonCreateRequest` builds it (`vs:1555-1681`): cpu_cores is the
/// total, no firmware, no boot order, no console, the disk by pool with `bootable: false`, the
/// NIC on a control-plane network, meta-data of the wizard.
fn create_request(backing: &str) -> pb::CreateVmOnNodeRequest {
    pb::CreateVmOnNodeRequest {
        vm_id: VM_ID.into(),
        name: "cp-vm".into(),
        labels: BTreeMap::from([("os-image".into(), "debian-12".into())]),
        spec: Some(pb::VmSpec {
            cpu_cores: 2,
            cpu_sockets: 1,
            memory_mib: 1024,
            disks: vec![pb::DiskSpec {
                id: DISK_ID.into(),
                size_gib: 4,
                format: pb::DiskFormat::Qcow2 as i32,
                backing_file: backing.into(),
                pool_id: POOL_ID.into(),
                ..Default::default()
            }],
            cdroms: vec![pb::CdromSpec {
                id: "cdrom-0".into(),
                ..Default::default()
            }],
            nics: vec![pb::NicSpec {
                network: NETWORK_ID.into(),
                ..Default::default()
            }],
            cloud_init: Some(pb::CloudInitConfig {
                user_data: USER_DATA.into(),
                meta_data: "instance-id: cp-vm\nlocal-hostname: cp-vm".into(),
                ..Default::default()
            }),
            guest_os: "debian".into(),
            ..Default::default()
        }),
    }
}

/// A free port on the loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The control plane's client: plaintext gRPC, no credentials (`dc:36-56`).
async fn plaintext_client(port: u16) -> NodeClient {
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("the control plane dials the node");
    pb::node_daemon_service_client::NodeDaemonServiceClient::new(channel)
}

async fn status(client: &mut NodeClient) -> Result<pb::VmStatusResponse, tonic::Status> {
    client
        .get_vm_status(pb::VmIdRequest {
            vm_id: VM_ID.into(),
        })
        .await
        .map(|r| r.into_inner())
}

/// Waits until the guest's boot phase is ready (cloud-init done), or fails with the serial log.
async fn wait_ready(client: &mut NodeClient) {
    let ready = common::eventually(BOOT, async || {
        let s = status(client).await.unwrap();
        let phase = s.boot.as_ref().map(|b| b.phase).unwrap_or_default();
        assert_ne!(phase, pb::BootPhase::Failed as i32, "{s:?}");
        phase == pb::BootPhase::Ready as i32
    })
    .await;
    if !ready {
        panic!(
            "the guest never reached ready; serial:\n{}",
            common::serial_log(client, VM_ID).await
        );
    }
}

/// The first bytes the VNC display sends: RFB's version.
async fn rfb_greeting(host: &str, port: u32) -> String {
    let mut s = tokio::net::TcpStream::connect((host, port as u16))
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

/// A connection from `from` to the plaintext listener: closed before any HTTP/2 byte comes back.
async fn refused_from(from: &str, port: u16) -> bool {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let Ok(mut s) = socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
    else {
        return true;
    };
    let _ = s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_creates_boots_uses_and_deletes_a_vm_on_the_node() {
    let _qemu = common::QEMU.lock().await;
    let mut cp = FakeCp::new();
    cp.start().await;
    let port = free_port();
    let mut node = Node::new();
    let config = node.root.join("node.toml");
    std::fs::write(
        &config,
        format!("[control_plane]\nheartbeat_interval = 1\nmanagement_ip = \"{MANAGEMENT}\"\n"),
    )
    .unwrap();
    node.args = vec![
        "--config".into(),
        config.display().to_string(),
        "--control-plane".into(),
        cp.url(),
        "--listen".into(),
        format!("plaintext+tcp:127.0.0.1:{port}"),
        // --listen replaces the default listener: keep the Unix socket the harness waits for
        // (bound after the plaintext listener, so that one is up when the socket appears).
        "--listen".into(),
        format!("unix:{}", node.socket().display()),
        "--allow-from".into(),
        "127.0.0.1/32".into(),
    ];
    // The image the control plane learnt from ScanLocalImages: a path in the images directory.
    let image = node.images.join("debian-12-genericcloud.qcow2");
    std::fs::copy(limiquantix_test_support::guest_image(), &image).unwrap();
    node.start();
    cp.wait_calls("RegisterNode", 1, Duration::from_secs(30))
        .await;

    let mut client = plaintext_client(port).await;
    client
        .health_check(pb::HealthCheckRequest {})
        .await
        .unwrap();
    assert!(
        refused_from("127.0.0.3", port).await,
        "outside the allow-list"
    );

    // On connect: InitStoragePool for the node's pools, again on every connection.
    let init = || pb::InitStoragePoolRequest {
        pool_id: POOL_ID.into(),
        r#type: pb::StoragePoolType::LocalDir as i32,
        config: Some(pb::StoragePoolConfig {
            local: Some(pb::LocalDirPoolConfig::default()),
            ..Default::default()
        }),
    };
    let pool = client.init_storage_pool(init()).await.unwrap().into_inner();
    assert!(pool.total_bytes > 0 && pool.available_bytes > 0, "{pool:?}");
    client.init_storage_pool(init()).await.unwrap();
    let pool_dir = std::path::PathBuf::from(&pool.mount_path);
    std::fs::create_dir_all(pool_dir.join("iso")).unwrap();
    let tools = limiquantix_cloudinit::iso9660::write(
        &[limiquantix_cloudinit::image::ImageFile::new(
            "README", b"tools",
        )],
        &limiquantix_cloudinit::iso9660::IsoOptions::default(),
    )
    .unwrap();
    std::fs::write(pool_dir.join("iso/tools.iso"), tools).unwrap();

    let created = client
        .create_vm(create_request(&image.display().to_string()))
        .await
        .expect("CreateVM as the control plane sends it is accepted")
        .into_inner();
    assert!(created.created, "{created:?}");
    client
        .start_vm(pb::VmIdRequest {
            vm_id: VM_ID.into(),
        })
        .await
        .unwrap();
    wait_ready(&mut client).await;

    let s = status(&mut client).await.unwrap();
    assert_eq!(s.vcpus, 2, "cpu_cores is the total");
    assert_eq!(s.disks[0].id, DISK_ID, "the control plane's disk id");
    assert!(
        s.disks[0].path.starts_with(&pool.mount_path),
        "the disk lives in the pool: {}",
        s.disks[0].path
    );

    // The console: VNC on the management address with the VM's own password.
    let console = client
        .get_console(pb::VmIdRequest {
            vm_id: VM_ID.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (console.r#type.as_str(), console.host.as_str()),
        ("vnc", MANAGEMENT)
    );
    assert_eq!(console.password.len(), 8);
    assert!(
        rfb_greeting(&console.host, console.port)
            .await
            .starts_with("RFB 003.")
    );

    // MountISO / EjectISO: `sdb` is the first CD-ROM of a one-disk VM; pool-relative paths.
    let media = |iso: &str| pb::ChangeMediaRequest {
        vm_id: VM_ID.into(),
        device: "sdb".into(),
        iso_path: iso.into(),
    };
    client.change_media(media("iso/tools.iso")).await.unwrap();
    client.change_media(media("")).await.unwrap();

    // Heartbeats on time, with real figures and the pool by its control-plane id.
    let beats = cp
        .wait_calls("UpdateHeartbeat", 3, Duration::from_secs(30))
        .await;
    let last = &beats.last().unwrap().body;
    assert!(
        last["memoryUsedMib"].as_u64().is_some_and(|m| m > 0)
            || last["memoryUsedMib"].as_str().is_some()
    );
    let pools = last["storagePools"].as_array().unwrap();
    assert!(pools.iter().any(|p| p["poolId"] == POOL_ID), "{last}");

    // StopVM with the control plane's 30 s returns once the VM is off.
    client
        .stop_vm(pb::StopVmRequest {
            vm_id: VM_ID.into(),
            timeout_seconds: 30,
        })
        .await
        .unwrap();
    assert_eq!(
        status(&mut client).await.unwrap().state,
        pb::PowerState::Stopped as i32
    );

    // The forced delete: a plain DeleteVM of a running VM.
    client
        .start_vm(pb::VmIdRequest {
            vm_id: VM_ID.into(),
        })
        .await
        .unwrap();
    client
        .delete_vm(pb::VmIdRequest {
            vm_id: VM_ID.into(),
        })
        .await
        .expect("a running VM is forced off and deleted");
    let gone = status(&mut client).await.unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
    assert!(
        gone.message().contains("VM not found"),
        "{}",
        gone.message()
    );
    assert!(
        !std::path::Path::new(&s.disks[0].path).exists(),
        "its disk is gone from the pool"
    );
    assert!(node.vm_dirs().is_empty(), "{:?}", node.vm_dirs());

    // The password of the UI's cloud-config never reaches the daemon's log.
    assert!(!node.log_text().contains("s3cret-pw"));
    node.terminate();
    cp.stop().await;
}
