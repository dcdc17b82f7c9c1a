//! A real guest for end-to-end tests: a daemon on a temporary state directory with the Debian
//! test image (`LQ_TEST_GUEST_IMAGE`, built through the script when unset) in its library, a
//! cloud-image VM, the daemon's boot verdict, and the guest agent for checks from inside.

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
pub const BOOT_LIMIT: Duration = Duration::from_secs(480);
/// One booting scenario at a time.
pub static BOOTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// The test image's name in each daemon's image library.
pub const IMAGE_NAME: &str = "lq-test-debian.qcow2";
/// The key the default seed authorises (never used to log in; compared from inside the guest).
pub const TEST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHrTQa1Qy1vCj3mZ6Pz0hS0nXbXo1uV9d1Zq0zZ4nq7E lq-e2e";

/// A daemon process on a temporary state directory, killed when dropped (its QEMUs too).
pub struct Daemon {
    dir: tempfile::TempDir,
    process: Option<DaemonProcess>,
    /// Extra command-line arguments of every start.
    args: Vec<String>,
}

impl Daemon {
    /// A daemon on a fresh temporary state directory, with the test image in its library.
    pub async fn start() -> (Self, NodeClient) {
        Self::start_with(&[]).await
    }

    /// [`Daemon::start`] with extra command-line arguments (kept for restarts).
    pub async fn start_with(args: &[&str]) -> (Self, NodeClient) {
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
        let mut daemon = Daemon {
            dir,
            process: None,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        let client = daemon.spawn().await;
        (daemon, client)
    }

    /// State and run directory, socket and log, under the temporary directory.
    pub fn daemon_paths(&self) -> DaemonPaths {
        DaemonPaths::under(self.dir.path())
    }

    pub fn state(&self) -> PathBuf {
        self.daemon_paths().state
    }

    pub fn run(&self) -> PathBuf {
        self.daemon_paths().run
    }

    pub async fn spawn(&mut self) -> NodeClient {
        let paths = self.daemon_paths();
        let _ = std::fs::remove_file(&paths.socket);
        let target = format!("unix:{}", paths.socket.display());
        let binary = env!("CARGO_BIN_EXE_limiquantix-node");
        self.process = Some(DaemonProcess::start(binary, &paths, |cmd| {
            cmd.arg("--listen").arg(&target).args(&self.args);
        }));
        limiquantix_proto::connect(&target)
            .await
            .unwrap_or_else(|e| panic!("connect to the daemon: {e}\n{}", self.log()))
    }

    /// Stops the daemon with SIGTERM (its QEMUs keep running).
    pub fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.terminate(Duration::from_secs(20));
        }
    }

    /// Kills the daemon with SIGKILL, as a crash would (its QEMUs keep running).
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Stops the daemon and starts it again.
    pub async fn restart(&mut self) -> NodeClient {
        self.stop();
        self.spawn().await
    }

    pub fn log(&self) -> String {
        self.daemon_paths().log_text()
    }

    pub fn paths(&self, vm_id: &str) -> RuntimePaths {
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
pub fn vm_request(
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
pub async fn create_and_start(client: &mut NodeClient, req: pb::CreateVmOnNodeRequest) -> String {
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
pub async fn follow_until(
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
pub type Events = tonic::Streaming<pb::NodeEvent>;

pub async fn subscribe(client: &mut NodeClient) -> Events {
    client
        .stream_events(())
        .await
        .expect("StreamEvents")
        .into_inner()
}

/// Waits for the daemon's verdict on the VM's boot (its `boot-phase` events): returns the
/// message of the `ready` or `failed` event.
pub async fn daemon_verdict(
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
pub async fn inside(daemon: &mut Daemon, vm_id: &str) -> QgaClient {
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
pub async fn agent_report(client: &mut NodeClient, vm_id: &str) -> pb::VmStatusResponse {
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
pub async fn guest_sh(qga: &QgaClient, script: &str) -> String {
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
