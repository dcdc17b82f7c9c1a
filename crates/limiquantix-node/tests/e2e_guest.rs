//! End to end with a real guest: the real daemon binary, real QEMU (TCG unless `LQ_TEST_ACCEL`
//! says otherwise) and the Debian test cloud image built by `scripts/build-guest-image.sh`
//! (`LQ_TEST_GUEST_IMAGE`, built through the script when unset).
//!
//! Each booting scenario starts its own daemon on a temporary state directory, creates a VM
//! through gRPC, starts it, waits for the daemon's verdict on the boot (its `boot-phase` events:
//! serial console, then cloud-init's own status through the guest agent), and checks the guest
//! from inside through the guest agent. Booting scenarios run one at a time (a lock), so a 2-core machine boots one guest at
//! once.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use limiquantix_qemu::paths::RuntimePaths;
use limiquantix_qemu::qga::QgaClient;
use limiquantix_qemu::readiness::SerialLogTail;
use limiquantix_test_support::{DaemonPaths, DaemonProcess, guest_image, kill_vm_qemus};
use limiquantix_vm::model::VmId;
use limiquantix_vm::readiness::{BootPhase, ReadinessTracker};

/// How long one guest may take from StartVM to cloud-init's verdict (TCG on a busy 2-core host).
const BOOT_LIMIT: Duration = Duration::from_secs(480);
/// One booting scenario at a time.
static BOOTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// The test image's name in each daemon's image library.
const IMAGE_NAME: &str = "lq-test-debian.qcow2";
/// The key the default seed authorises (never used to log in; compared from inside the guest).
const TEST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHrTQa1Qy1vCj3mZ6Pz0hS0nXbXo1uV9d1Zq0zZ4nq7E lq-e2e";

/// A daemon process on a temporary state directory, killed when dropped (its QEMUs too).
struct Daemon {
    dir: tempfile::TempDir,
    process: Option<DaemonProcess>,
}

impl Daemon {
    async fn start() -> (Self, NodeClient) {
        let dir = tempfile::Builder::new()
            .prefix("lq-e2e-")
            .tempdir()
            .unwrap();
        let images = dir.path().join("state/images");
        std::fs::create_dir_all(&images).unwrap();
        let image = guest_image();
        let target = images.join(IMAGE_NAME);
        if std::fs::hard_link(&image, &target).is_err() {
            std::fs::copy(&image, &target).expect("copy the test image");
        }
        let mut daemon = Daemon { dir, process: None };
        let client = daemon.spawn().await;
        (daemon, client)
    }

    /// State and run directory, socket and log, under the temporary directory.
    fn daemon_paths(&self) -> DaemonPaths {
        DaemonPaths::under(self.dir.path())
    }

    fn state(&self) -> PathBuf {
        self.daemon_paths().state
    }

    fn run(&self) -> PathBuf {
        self.daemon_paths().run
    }

    async fn spawn(&mut self) -> NodeClient {
        let paths = self.daemon_paths();
        let _ = std::fs::remove_file(&paths.socket);
        let target = format!("unix:{}", paths.socket.display());
        let binary = env!("CARGO_BIN_EXE_limiquantix-node");
        self.process = Some(DaemonProcess::start(binary, &paths, |cmd| {
            cmd.arg("--listen").arg(&target);
        }));
        limiquantix_proto::connect(&target)
            .await
            .unwrap_or_else(|e| panic!("connect to the daemon: {e}\n{}", self.log()))
    }

    /// Stops the daemon with SIGTERM (its QEMUs keep running).
    fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.terminate(Duration::from_secs(20));
        }
    }

    /// Stops the daemon and starts it again.
    async fn restart(&mut self) -> NodeClient {
        self.stop();
        self.spawn().await
    }

    fn log(&self) -> String {
        self.daemon_paths().log_text()
    }

    fn paths(&self, vm_id: &str) -> RuntimePaths {
        RuntimePaths::new(&self.state(), &self.run(), &VmId::parse(vm_id).unwrap())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // QEMUs are detached from the daemon: end them by their pidfiles first.
        kill_vm_qemus(&self.run());
        drop(self.process.take());
    }
}

/// A cloud-image VM: 2 vCPUs, 1 GiB, a 2 GiB overlay on the test image, one user-mode NIC.
fn vm_request(
    daemon: &Daemon,
    name: &str,
    cloud_init: Option<pb::CloudInitConfig>,
) -> pb::CreateVmOnNodeRequest {
    pb::CreateVmOnNodeRequest {
        vm_id: uuid::Uuid::new_v4().to_string(),
        name: name.into(),
        spec: Some(pb::VmSpec {
            cpu_cores: 2,
            cpu_sockets: 1,
            cpu_threads_per_core: 1,
            memory_mib: 1024,
            disks: vec![pb::DiskSpec {
                id: "disk0".into(),
                backing_file: daemon
                    .state()
                    .join("images")
                    .join(IMAGE_NAME)
                    .display()
                    .to_string(),
                size_gib: 2,
                bootable: true,
                ..Default::default()
            }],
            nics: vec![pb::NicSpec {
                id: "net0".into(),
                ..Default::default()
            }],
            default_seed: cloud_init.is_none().then(|| pb::DefaultSeedOptions {
                ssh_authorized_keys: vec![TEST_KEY.into()],
                ..Default::default()
            }),
            cloud_init,
            ..Default::default()
        }),
        labels: Default::default(),
    }
}

/// Creates and starts a VM; returns its id.
async fn create_and_start(client: &mut NodeClient, req: pb::CreateVmOnNodeRequest) -> String {
    let id = client
        .create_vm(req)
        .await
        .expect("CreateVM")
        .into_inner()
        .vm_id;
    client
        .start_vm(pb::VmIdRequest { vm_id: id.clone() })
        .await
        .expect("StartVM");
    id
}

/// Follows the VM's serial log until the phase satisfies `until` (or the boot is over).
async fn follow_until(
    tail: &mut SerialLogTail,
    tracker: &Arc<Mutex<ReadinessTracker>>,
    deadline: Instant,
    until: impl Fn(&BootPhase) -> bool,
) -> BootPhase {
    loop {
        let lines = tokio::time::timeout_at(deadline.into(), tail.next_lines())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "boot did not get past {:?} in time",
                    tracker.lock().unwrap().phase()
                )
            })
            .expect("read serial.log");
        let mut t = tracker.lock().unwrap();
        for line in &lines {
            t.feed_line(line);
            if until(t.phase()) || t.phase().is_terminal() {
                return t.phase().clone();
            }
        }
    }
}

/// The daemon's boot events of one VM, from a subscription taken before the verdict.
type Events = tonic::Streaming<pb::NodeEvent>;

async fn subscribe(client: &mut NodeClient) -> Events {
    client
        .stream_events(())
        .await
        .expect("StreamEvents")
        .into_inner()
}

/// Waits for the daemon's verdict on the VM's boot (its `boot-phase` events): returns the
/// message of the `ready` or `failed` event.
async fn daemon_verdict(
    daemon: &Daemon,
    events: &mut Events,
    vm_id: &str,
    deadline: Instant,
) -> String {
    let mut last = String::from("no boot event yet");
    loop {
        let next = tokio::time::timeout_at(deadline.into(), events.message()).await;
        let event = match next {
            Ok(Ok(Some(e))) => e,
            Ok(other) => panic!("the event stream ended: {other:?}\n{}", daemon.log()),
            Err(_) => panic!(
                "no verdict from the daemon in time (last: {last})\n{}",
                std::fs::read_to_string(daemon.paths(vm_id).serial_log()).unwrap_or_default()
            ),
        };
        if event.vm_id != vm_id
            || event.metadata.get("kind").map(String::as_str) != Some("boot-phase")
        {
            continue;
        }
        last = event.message.clone();
        if last.starts_with("guest boot: ready") || last.starts_with("guest boot: failed") {
            return last;
        }
    }
}

/// The guest agent, for checks from inside the guest. QEMU serves one agent connection at a
/// time and the daemon keeps its own, so the daemon is stopped first (its QEMUs keep running).
async fn inside(daemon: &mut Daemon, vm_id: &str) -> QgaClient {
    daemon.stop();
    let qga =
        QgaClient::new(daemon.paths(vm_id).qga_socket()).with_timeout(Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(60);
    while qga.ping().await.is_err() {
        assert!(Instant::now() < deadline, "the guest agent does not answer");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    qga
}

/// GetVMStatus once its guest agent report is connected (the daemon asks the agent when its
/// last answer is older than 10 s, so this waits at most a little longer than that).
async fn agent_report(client: &mut NodeClient, vm_id: &str) -> pb::VmStatusResponse {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = client
            .get_vm_status(pb::VmIdRequest {
                vm_id: vm_id.to_string(),
            })
            .await
            .expect("GetVMStatus")
            .into_inner();
        if status.guest_agent.as_ref().is_some_and(|a| a.connected) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "GetVMStatus never reported a connected guest agent: {status:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Runs `sh -c script` in the guest; returns its stdout (asserting exit code 0).
async fn guest_sh(qga: &QgaClient, script: &str) -> String {
    let out = qga
        .exec_wait("/bin/sh", &["-c", script], Duration::from_secs(60))
        .await
        .expect("guest-exec");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.exit_code,
        Some(0),
        "`{script}` failed in the guest: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

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
