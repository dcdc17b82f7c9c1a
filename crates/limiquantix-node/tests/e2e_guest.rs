//! End to end with a real guest: the real daemon binary, real QEMU (TCG unless `LQ_TEST_ACCEL`
//! says otherwise) and the Debian test cloud image built by `scripts/build-guest-image.sh`
//! (`LQ_TEST_GUEST_IMAGE`, built through the script when unset).
//!
//! Each booting scenario starts its own daemon on a temporary state directory, creates a VM
//! through gRPC, starts it, waits for the daemon's verdict on the boot (its `boot-phase` events:
//! serial console, then cloud-init's own status through the guest agent), and checks the guest
//! from inside through the guest agent. Booting scenarios run one at a time (a lock), so a 2-core machine boots one guest at
//! once.

mod common;

use common::guest::*;
use limiquantix_proto::v1 as pb;
use limiquantix_qemu::readiness::SerialLogTail;
use limiquantix_vm::readiness::{BootPhase, ReadinessTracker};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The seed's scenario, with a daemon restart in the middle of the boot: no cloud_init given →
/// the default seed; the guest boots from its disk (no network boot), cloud-init finishes, the
/// restarted daemon reports ready, the agent answers, and from inside: user `admin` with the
/// key, hostname = VM name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_seed_boots_configured_and_survives_a_daemon_restart() {
    let _one = BOOTING.lock().await;
    let (mut daemon, mut client) = Daemon::start().await;
    let id = create_and_start(&mut client, vm_request(&daemon, "e2e-web1", None)).await;
    let deadline = Instant::now() + BOOT_LIMIT;
    let tracker = Arc::new(Mutex::new(ReadinessTracker::new()));
    let mut tail = SerialLogTail::new(daemon.paths(&id).serial_log(), 0);

    // Restart the daemon once the guest kernel runs: the guest keeps booting.
    let phase = follow_until(&mut tail, &tracker, deadline, |p| {
        *p == BootPhase::KernelRunning
    })
    .await;
    assert_eq!(phase, BootPhase::KernelRunning);
    let mut client2 = daemon.restart().await;
    let status = client2
        .get_vm_status(pb::VmIdRequest { vm_id: id.clone() })
        .await
        .expect("GetVMStatus after the restart")
        .into_inner();
    assert_eq!(
        status.state,
        pb::PowerState::Running as i32,
        "the restarted daemon re-adopts the running guest: {status:?}"
    );
    drop(client);

    // The restarted daemon follows the boot it re-adopted to its verdict.
    let mut events = subscribe(&mut client2).await;
    let verdict = daemon_verdict(&daemon, &mut events, &id, deadline).await;
    assert_eq!(verdict, "guest boot: ready");
    drop(tail);

    // PingAgent answers through the daemon once the guest is ready.
    let ping_deadline = Instant::now() + Duration::from_secs(90);
    let ping = loop {
        let ping = client2
            .ping_agent(pb::VmIdRequest { vm_id: id.clone() })
            .await
            .expect("PingAgent")
            .into_inner();
        if ping.connected || Instant::now() > ping_deadline {
            break ping;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    assert!(
        ping.connected,
        "the guest agent answers PingAgent: {ping:?}"
    );
    assert!(
        !ping.version.is_empty(),
        "PingAgent reports the agent's version: {ping:?}"
    );

    // GetVMStatus reports the boot phase and what the agent says about the guest.
    let status = agent_report(&mut client2, &id).await;
    let boot = status.boot.clone().expect("a running VM has a boot phase");
    assert_eq!(boot.phase(), pb::BootPhase::Ready, "{status:?}");
    assert_eq!(status.vcpus, 2);
    let agent = status.guest_agent.clone().expect("the agent's report");
    assert!(agent.connected, "{agent:?}");
    assert_eq!(agent.hostname, "e2e-web1");
    assert!(agent.os_name.contains("Debian"), "{agent:?}");
    assert!(!agent.kernel_version.is_empty(), "{agent:?}");
    // The guest's own view of its resources: memory from its /proc, filesystems from the agent.
    let usage = agent
        .resource_usage
        .clone()
        .expect("the guest's resource usage");
    assert!(
        usage.memory_total_bytes > 512 << 20 && usage.memory_used_bytes > 0,
        "{usage:?}"
    );
    assert!(
        usage.uptime_seconds > 0 && usage.process_count > 10,
        "{usage:?}"
    );
    assert!(
        usage
            .disks
            .iter()
            .any(|d| d.mount_point == "/" && d.total_bytes > 1 << 30),
        "the root filesystem: {usage:?}"
    );
    assert!(
        agent.ip_addresses.iter().any(|a| a == "10.0.2.15"),
        "the user-mode network's address from guest-network-get-interfaces: {agent:?}"
    );
    // ListVMs answers from the same report.
    let listed = client2
        .list_v_ms(())
        .await
        .expect("ListVMs")
        .into_inner()
        .vms
        .into_iter()
        .find(|v| v.vm_id == id)
        .expect("the VM is listed");
    assert_eq!(listed.boot.map(|b| b.phase()), Some(pb::BootPhase::Ready));
    assert_eq!(
        listed.guest_agent.map(|a| a.ip_addresses),
        Some(agent.ip_addresses.clone())
    );
    let log = std::fs::read_to_string(daemon.paths(&id).serial_log()).unwrap();
    // SeaBIOS mirrors its console to the serial port (the daemon runs BIOS machines with
    // `graphics=off`): it booted the disk.
    assert!(
        log.contains("SeaBIOS"),
        "SeaBIOS's banner on the serial console"
    );
    assert!(
        log.contains("Booting from Hard Disk"),
        "SeaBIOS booted the disk"
    );
    assert!(log.contains("Linux version"), "the disk's kernel booted");
    for bad in ["iPXE", "Nothing to boot", "No bootable device"] {
        assert!(!log.contains(bad), "serial log mentions {bad:?}");
    }

    let qga = inside(&mut daemon, &id).await;
    assert_eq!(guest_sh(&qga, "hostname").await.trim(), "e2e-web1");
    assert!(
        guest_sh(&qga, "getent passwd admin")
            .await
            .starts_with("admin:")
    );
    let keys = guest_sh(&qga, "cat /home/admin/.ssh/authorized_keys").await;
    assert!(keys.contains(TEST_KEY), "admin's authorized_keys: {keys}");
}

/// All four cloud-init documents given: each is observed applied inside the guest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_cloud_init_applies_all_four_documents() {
    let _one = BOOTING.lock().await;
    let (mut daemon, mut client) = Daemon::start().await;
    let mut events = subscribe(&mut client).await;
    let cloud_init = pb::CloudInitConfig {
        user_data: "#cloud-config\nruncmd:\n  - [sh, -c, \"echo lq-user-data > /var/lib/lq-user-marker\"]\n"
            .into(),
        meta_data: "instance-id: lq-e2e-custom-iid\nlocal-hostname: custom-host\n".into(),
        network_config: "version: 2\nethernets:\n  eth0:\n    addresses: [10.0.2.50/24]\n    \
                         gateway4: 10.0.2.2\n    nameservers:\n      addresses: [10.0.2.3]\n"
            .into(),
        vendor_data: "#cloud-config\nwrite_files:\n  - path: /var/lib/lq-vendor-marker\n    \
                      content: lq-vendor-data\n"
            .into(),
    };
    let id = create_and_start(
        &mut client,
        vm_request(&daemon, "e2e-custom", Some(cloud_init)),
    )
    .await;
    let deadline = Instant::now() + BOOT_LIMIT;
    let verdict = daemon_verdict(&daemon, &mut events, &id, deadline).await;
    assert_eq!(verdict, "guest boot: ready");
    let agent = agent_report(&mut client, &id).await.guest_agent.unwrap();
    assert_eq!(agent.hostname, "custom-host");
    assert!(
        agent.ip_addresses.iter().any(|a| a == "10.0.2.50"),
        "the static address of the network-config, as the agent reports it: {agent:?}"
    );

    let qga = inside(&mut daemon, &id).await;

    assert_eq!(
        guest_sh(&qga, "cat /var/lib/lq-user-marker").await.trim(),
        "lq-user-data"
    );
    assert_eq!(
        guest_sh(&qga, "cat /var/lib/lq-vendor-marker").await.trim(),
        "lq-vendor-data"
    );
    assert_eq!(
        guest_sh(&qga, "cat /var/lib/cloud/data/instance-id")
            .await
            .trim(),
        "lq-e2e-custom-iid"
    );
    assert_eq!(guest_sh(&qga, "hostname").await.trim(), "custom-host");
    let addr = guest_sh(&qga, "ip -4 -o addr show dev eth0").await;
    assert!(addr.contains("10.0.2.50/24"), "eth0: {addr}");
}

/// A user-data cloud-init itself reports as failing ends as `failed` with cloud-init's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_user_data_is_reported_failed_with_cloud_inits_message() {
    let _one = BOOTING.lock().await;
    let (daemon, mut client) = Daemon::start().await;
    let mut events = subscribe(&mut client).await;
    let cloud_init = pb::CloudInitConfig {
        user_data: "#cloud-config\nruncmd:\n  - [sh, -c, \"exit 3\"]\n".into(),
        ..Default::default()
    };
    let id = create_and_start(
        &mut client,
        vm_request(&daemon, "e2e-fails", Some(cloud_init)),
    )
    .await;
    let deadline = Instant::now() + BOOT_LIMIT;
    let verdict = daemon_verdict(&daemon, &mut events, &id, deadline).await;
    assert!(
        verdict.starts_with("guest boot: failed: cloud-init reported errors")
            && verdict.contains("scripts-user"),
        "the daemon's verdict: {verdict}"
    );
}

/// A malformed user-data is refused at CreateVM, naming the field; nothing is defined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_user_data_is_refused_at_create() {
    let (daemon, mut client) = Daemon::start().await;
    let cloud_init = pb::CloudInitConfig {
        user_data: "#cloud-config\nruncmd: [unclosed\n".into(),
        ..Default::default()
    };
    let err = client
        .create_vm(vm_request(&daemon, "e2e-bad", Some(cloud_init)))
        .await
        .expect_err("malformed user-data must be refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("user_data"), "{}", err.message());
    let vms = client.list_v_ms(()).await.expect("ListVMs").into_inner();
    assert!(vms.vms.is_empty(), "nothing defined: {vms:?}");
}
