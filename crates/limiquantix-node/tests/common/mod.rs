//! Test harness: runs the `limiquantix-node` binary on a temporary state and run directory and
//! talks to it through the generated gRPC client over its Unix socket.
#![allow(dead_code)]

pub mod bootsector;
pub mod guest;

use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use limiquantix_test_support::{DaemonPaths, DaemonProcess, kill_vm_qemus, tiny_guest_disk};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// Tests that run QEMU take this lock: one guest at a time on a 2-core machine.
pub static QEMU: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A temporary node: directories, and the daemon when running.
pub struct Node {
    _dir: tempfile::TempDir,
    /// Root of the temporary directories.
    pub root: PathBuf,
    /// `--state-dir`.
    pub state: PathBuf,
    /// `--run-dir`.
    pub run: PathBuf,
    /// The images directory (`<state>/images`).
    pub images: PathBuf,
    /// A pool (`--pool pool=<root>/pool`).
    pub pool: PathBuf,
    /// The daemon's log (stdout and stderr), appended across restarts.
    pub log: PathBuf,
    /// Extra `--qemu-img` to use.
    pub qemu_img: Option<PathBuf>,
    /// Extra command-line arguments.
    pub args: Vec<String>,
    daemon: Option<DaemonProcess>,
}

impl Node {
    /// Fresh directories; the daemon is not started.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("lqn")
            .tempdir_in("/tmp")
            .unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let state = root.join("state");
        let images = state.join("images");
        let pool = root.join("pool");
        std::fs::create_dir_all(&images).unwrap();
        std::fs::create_dir_all(&pool).unwrap();
        Node {
            _dir: dir,
            run: root.join("run"),
            log: root.join("daemon.log"),
            root,
            state,
            images,
            pool,
            qemu_img: None,
            args: Vec::new(),
            daemon: None,
        }
    }

    /// The API socket.
    pub fn socket(&self) -> PathBuf {
        self.run.join("limiquantix-node.sock")
    }

    /// The VM directories under `<state>/vms` (including any staging leftovers).
    pub fn vm_dirs(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.state.join("vms")) else {
            return Vec::new();
        };
        let mut v: Vec<String> = rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn paths(&self) -> DaemonPaths {
        DaemonPaths {
            state: self.state.clone(),
            run: self.run.clone(),
            socket: self.socket(),
            log: self.log.clone(),
        }
    }

    /// What this node adds to the daemon's command line: the pool, `qemu_img`, `args`, `env`.
    fn configure(&self, cmd: &mut Command, env: &[(&str, &str)]) {
        cmd.arg("--pool")
            .arg(format!("pool={}", self.pool.display()))
            .env("RUST_LOG", "debug")
            .env_remove("LQ_FAULT_INJECT");
        if let Some(q) = &self.qemu_img {
            cmd.arg("--qemu-img").arg(q);
        }
        cmd.args(&self.args);
        for (k, v) in env {
            cmd.env(k, v);
        }
    }

    /// Starts the daemon with extra environment variables and waits for its socket.
    pub fn start_with(&mut self, env: &[(&str, &str)]) {
        assert!(self.daemon.is_none(), "daemon already running");
        let binary = env!("CARGO_BIN_EXE_limiquantix-node");
        let daemon = DaemonProcess::start(binary, &self.paths(), |cmd| self.configure(cmd, env));
        self.daemon = Some(daemon);
    }

    /// Runs the daemon expecting it to refuse to start: its exit status and its log.
    pub fn run_expecting_refusal(&self) -> (ExitStatus, String) {
        let binary = env!("CARGO_BIN_EXE_limiquantix-node");
        let daemon = DaemonProcess::spawn(binary, &self.paths(), |cmd| self.configure(cmd, &[]));
        (daemon.wait_exit(Duration::from_secs(30)), self.log_text())
    }

    /// Starts the daemon.
    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    /// A client over the Unix socket.
    pub async fn client(&self) -> NodeClient {
        limiquantix_proto::connect(&format!("unix:{}", self.socket().display()))
            .await
            .expect("connect")
    }

    /// SIGTERM and wait: the graceful stop.
    pub fn terminate(&mut self) -> ExitStatus {
        let daemon = self.daemon.take().expect("daemon running");
        daemon.terminate(Duration::from_secs(20))
    }

    /// SIGKILL: the daemon dies without any cleanup.
    pub fn kill(&mut self) {
        let mut daemon = self.daemon.take().expect("daemon running");
        daemon.kill();
    }

    /// Waits for the daemon to exit by itself (an injected fault aborts it).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let daemon = self.daemon.take().expect("daemon running");
        daemon.wait_exit(Duration::from_secs(30))
    }

    /// The running daemon's process id.
    pub fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().expect("daemon running").id()
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A small qcow2 "cloud image" in the images directory (not bootable; enough for seeds).
    pub fn small_image(&self, name: &str) -> PathBuf {
        let p = self.images.join(name);
        let out = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&p)
            .arg("64M")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        p
    }

    /// The bootable tiny guest disk, copied into the images directory (a symlink to the
    /// cache would be refused: it resolves outside the allowed directories).
    pub fn tiny_image(&self) -> PathBuf {
        let p = self.images.join("tiny.qcow2");
        if !p.exists() {
            std::fs::copy(tiny_guest_disk(), &p).unwrap();
        }
        p
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.daemon.take());
        // VMs left running by a failed test: kill their QEMUs (their pidfiles are ours).
        kill_vm_qemus(&self.run);
    }
}

/// Whether an exit status is an abort (SIGABRT), as an injected fault produces.
pub fn aborted(s: ExitStatus) -> bool {
    s.signal() == Some(libc::SIGABRT)
}

/// A CreateVM request with one disk on `backing` and a user-mode NIC.
pub fn cloud_vm(vm_id: &str, name: &str, backing: &Path) -> pb::CreateVmOnNodeRequest {
    pb::CreateVmOnNodeRequest {
        vm_id: vm_id.into(),
        name: name.into(),
        spec: Some(pb::VmSpec {
            cpu_cores: 1,
            memory_mib: 256,
            disks: vec![pb::DiskSpec {
                backing_file: backing.display().to_string(),
                ..Default::default()
            }],
            nics: vec![pb::NicSpec::default()],
            ..Default::default()
        }),
        labels: Default::default(),
    }
}

/// Extracts file `name` of an ISO with xorriso (an independent reader).
pub fn iso_file(iso: &Path, name: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join(name);
    let out = Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(iso)
        .arg("-extract")
        .arg(format!("/{name}"))
        .arg(&dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xorriso: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dest).unwrap()
}

/// Polls `f` until it is true or `limit` passes.
pub async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// The serial log of VM `vm_id` (GetVMLogs, last 1000 lines).
pub async fn serial_log(client: &mut NodeClient, vm_id: &str) -> String {
    client
        .get_vm_logs(pb::GetVmLogsRequest {
            vm_id: vm_id.into(),
            lines: 1000,
        })
        .await
        .unwrap()
        .into_inner()
        .serial_log
}
