//! Helpers shared by the workspace's tests, each written once:
//!
//! - where the test guests are: the real Debian test image ([`guest_image`]) and the tiny
//!   kernel + busybox guest ([`tiny_guest_dir`], and as a bootable disk [`tiny_guest_disk`]),
//!   each from its environment variable or built and cached by its script;
//! - the accelerator the tests run QEMU with ([`accel`]);
//! - the daemon binary as a child process on a temporary state directory, waited for until its
//!   socket answers ([`DaemonProcess`], [`DaemonPaths`]), and the QEMUs a failed test left
//!   running ([`kill_vm_qemus`]);
//! - TLS certificates and keys of every type, made with `openssl` ([`pki`]).
//!
//! It depends on no crate of the workspace: the caller passes the daemon binary's path (for
//! example `env!("CARGO_BIN_EXE_limiquantix-node")`). What only one test crate uses stays in
//! that crate's `tests/common`.

pub mod pki;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long the daemon may take to answer on its socket after it was spawned.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The workspace's root directory (this crate is `crates/limiquantix-test-support` in it).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .expect("the crate lives in crates/ of the workspace")
        .to_path_buf()
}

/// The accelerator the tests run QEMU with, as QEMU names it: `LQ_TEST_ACCEL` (`tcg` or `kvm`),
/// TCG when it is unset or empty.
pub fn accel() -> String {
    non_empty_var("LQ_TEST_ACCEL")
        .and_then(|a| a.into_string().ok())
        .unwrap_or_else(|| "tcg".into())
}

/// The real test guest, a BIOS-bootable Debian cloud image (systemd, cloud-init, the guest agent,
/// sshd): `LQ_TEST_GUEST_IMAGE`, or built (or found in its cache) by
/// `scripts/build-guest-image.sh --print-path`, whose progress goes to the test's stderr. Looked
/// up once per test process.
pub fn guest_image() -> PathBuf {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            if let Some(p) = non_empty_var("LQ_TEST_GUEST_IMAGE") {
                return PathBuf::from(p);
            }
            let script = workspace_root().join("scripts/build-guest-image.sh");
            print_path(
                Command::new(&script)
                    .arg("--print-path")
                    .stderr(Stdio::inherit()),
                "scripts/build-guest-image.sh",
            )
        })
        .clone()
}

/// The tiny test guest's directory (`vmlinuz`, `initramfs.img`; its `/init` prints
/// `LQ-TINY-GUEST BOOT`, then `LQ-TINY-GUEST READY`, and echoes console lines):
/// `LQ_TINY_GUEST_DIR`, or built (and cached) by `scripts/build-tiny-guest.sh --print-path`.
/// Looked up once per test process.
pub fn tiny_guest_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = non_empty_var("LQ_TINY_GUEST_DIR") {
            return PathBuf::from(d);
        }
        let script = workspace_root().join("scripts/build-tiny-guest.sh");
        print_path(
            Command::new("bash").arg(script).arg("--print-path"),
            "scripts/build-tiny-guest.sh",
        )
    })
    .clone()
}

/// The tiny guest as a BIOS-bootable qcow2 disk, a "cloud image" that really boots from its own
/// disk (an MBR, one FAT partition with the kernel, the initramfs and syslinux): made and cached
/// by this crate's `fixtures/make-tiny-disk.sh` from [`tiny_guest_dir`]. Looked up once per test
/// process.
pub fn tiny_guest_disk() -> PathBuf {
    static DISK: OnceLock<PathBuf> = OnceLock::new();
    DISK.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-tiny-disk.sh");
        print_path(
            Command::new("bash").arg(script).arg(tiny_guest_dir()),
            "make-tiny-disk.sh",
        )
    })
    .clone()
}

/// An environment variable, unless it is unset or empty.
fn non_empty_var(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// Runs a fixture script that prints a path on stdout; fails the test with its stderr when it
/// fails.
fn print_path(cmd: &mut Command, what: &str) -> PathBuf {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Where a test daemon keeps its state and where it is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonPaths {
    /// `--state-dir`.
    pub state: PathBuf,
    /// `--run-dir`.
    pub run: PathBuf,
    /// The Unix socket [`DaemonProcess::start`] waits for (the daemon's default, or one the caller
    /// passes with `--listen unix:...`).
    pub socket: PathBuf,
    /// The daemon's stdout and stderr, appended across restarts.
    pub log: PathBuf,
}

impl DaemonPaths {
    /// Under `root`: `state/`, `run/`, the daemon's default socket
    /// `run/limiquantix-node.sock`, and `daemon.log`.
    pub fn under(root: &Path) -> Self {
        let run = root.join("run");
        DaemonPaths {
            state: root.join("state"),
            socket: run.join("limiquantix-node.sock"),
            run,
            log: root.join("daemon.log"),
        }
    }

    /// The daemon's log so far (empty when there is none yet).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The daemon binary running as a child of the test; killed (and reaped) when dropped. The QEMUs
/// it started are not its children and outlive it: see [`kill_vm_qemus`].
#[derive(Debug)]
pub struct DaemonProcess {
    child: Child,
    log: PathBuf,
}

impl DaemonProcess {
    /// Starts `BINARY --state-dir STATE --run-dir RUN --accel ACCEL` ([`accel`]) with what
    /// `configure` adds (arguments, environment), stdin from `/dev/null`, stdout and stderr
    /// appended to the log. Returns once the socket accepts a connection; fails the test with the
    /// log when the daemon exits first or does not listen within 30 s.
    pub fn start(
        binary: impl AsRef<OsStr>,
        paths: &DaemonPaths,
        configure: impl FnOnce(&mut Command),
    ) -> Self {
        let mut daemon = Self::spawn(binary, paths, configure);
        let deadline = Instant::now() + START_LIMIT;
        while std::os::unix::net::UnixStream::connect(&paths.socket).is_err() {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!(
                    "the daemon exited at start ({status}); log:\n{}",
                    daemon.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the daemon's socket {} never answered within {START_LIMIT:?}; log:\n{}",
                paths.socket.display(),
                daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    /// Spawns the daemon as [`DaemonProcess::start`] does, without waiting for its socket: for a
    /// daemon expected to refuse its configuration and exit ([`DaemonProcess::wait_exit`]).
    pub fn spawn(
        binary: impl AsRef<OsStr>,
        paths: &DaemonPaths,
        configure: impl FnOnce(&mut Command),
    ) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&paths.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", paths.log.display()));
        let mut cmd = Command::new(binary.as_ref());
        cmd.arg("--state-dir")
            .arg(&paths.state)
            .arg("--run-dir")
            .arg(&paths.run)
            .arg("--accel")
            .arg(accel())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("duplicate the log's descriptor"))
            .stderr(log);
        configure(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.as_ref().display()));
        DaemonProcess {
            child,
            log: paths.log.clone(),
        }
    }

    /// The daemon's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The graceful stop: SIGTERM, then waits up to `limit` for the exit (killed, and the test
    /// failed, after that).
    pub fn terminate(self, limit: Duration) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) on the pid of a child we own and have not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        self.wait_exit(limit)
    }

    /// Waits up to `limit` for the daemon to exit by itself (an injected fault aborts it); kills
    /// it and fails the test after that.
    pub fn wait_exit(mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("the daemon did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL and reap (nothing when it has exited already).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGKILLs the QEMU of every VM under the daemon's run directory `run` (`run/vms/*/qemu.pid`):
/// QEMUs are detached from the daemon and outlive it, so a failed test would leave them running.
pub fn kill_vm_qemus(run: &Path) {
    let Ok(vms) = std::fs::read_dir(run.join("vms")) else {
        return;
    };
    for vm in vms.flatten() {
        if let Ok(pid) = std::fs::read_to_string(vm.path().join("qemu.pid"))
            && let Ok(pid) = pid.trim().parse::<libc::pid_t>()
            && pid > 0
        {
            // SAFETY: kill(2); the pid came from a pidfile of the test's own temporary run
            // directory.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
