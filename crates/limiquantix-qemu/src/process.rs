//! QEMU processes: spawned detached, watched until they exit, found again after a restart.
//!
//! - [`spawn`] starts QEMU in its own process group (`posix_spawn` with `setpgid`: nothing runs
//!   between fork and exec, so the daemon's page tables are not copied), stdin from
//!   `/dev/null`, stdout and stderr appended to the VM's `qemu.log`. The daemon is its parent
//!   only until the daemon exits: the process is not in the daemon's process group or any
//!   terminal's foreground group, so no terminal signal or signal to the daemon's group reaches
//!   it (it never reads a terminal), and it is
//!   re-parented (to init or a subreaper) when the daemon goes. A watcher task waits for the child,
//!   which both reports the exit and reaps it, so no zombies accumulate.
//! - [`adopt`] watches a QEMU that another daemon instance started, through a pidfd
//!   (`pidfd_open`, readable once the process exits), or by polling `/proc` where pidfds are
//!   not available.
//! - [`is_qemu_of`] is the liveness test: the pid exists and its `/proc/<pid>/cmdline` contains
//!   the VM's UUID, which guards against a recycled pid.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use limiquantix_vm::model::VmId;

/// How often liveness is polled where pidfds are not available.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A process failure.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The log file could not be opened.
    #[error("cannot open QEMU log {}: {source}", path.display())]
    Log {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// QEMU could not be started.
    #[error("cannot start {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// The pidfile exists but does not hold a pid.
    #[error("pidfile {} does not hold a process id: {content:?}", path.display())]
    BadPidfile {
        /// The pidfile.
        path: PathBuf,
        /// What it holds (first 32 bytes).
        content: String,
    },
    /// Reading the pidfile failed.
    #[error("cannot read pidfile {}: {source}", path.display())]
    Pidfile {
        /// The pidfile.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// How a QEMU process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessExit {
    /// Exit code, when it exited normally and the status is known (only for processes this
    /// instance spawned).
    pub code: Option<i32>,
    /// Terminating signal, when killed by one and the status is known.
    pub signal: Option<i32>,
}

impl std::fmt::Display for ProcessExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "signal {s}"),
            (None, None) => f.write_str("exit status unknown"),
        }
    }
}

/// A watched QEMU process.
#[derive(Debug, Clone)]
pub struct QemuProcess {
    pid: u32,
    exit: watch::Receiver<Option<ProcessExit>>,
}

impl QemuProcess {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process has exited.
    pub fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Waits for the process to exit.
    pub async fn wait(&self) -> ProcessExit {
        let mut rx = self.exit.clone();
        let seen = rx.wait_for(Option::is_some).await.ok().and_then(|v| *v);
        // The watcher is gone only after sending, or when the runtime shuts down.
        seen.unwrap_or_else(|| rx.borrow().unwrap_or_default())
    }

    /// Waits at most `limit` for the process to exit.
    pub async fn wait_timeout(&self, limit: Duration) -> Option<ProcessExit> {
        tokio::time::timeout(limit, self.wait()).await.ok()
    }

    /// Sends `sig` to the process if it is still running.
    pub fn signal(&self, sig: Signal) {
        if !self.has_exited() {
            signal(self.pid, sig);
        }
    }
}

/// What to spawn.
#[derive(Debug, Clone)]
pub struct SpawnSpec<'a> {
    /// The QEMU binary.
    pub program: &'a Path,
    /// Its arguments.
    pub args: &'a [OsString],
    /// QEMU's stdout/stderr log (appended).
    pub log: &'a Path,
    /// Working directory (the VM directory).
    pub cwd: &'a Path,
}

/// Starts QEMU detached in its own process group and watches it. Call from within a tokio runtime.
pub fn spawn(spec: &SpawnSpec<'_>) -> Result<QemuProcess, ProcessError> {
    let log_err = |source| ProcessError::Log {
        path: spec.log.to_owned(),
        source,
    };
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(spec.log)
        .map_err(log_err)?;
    let _ = writeln!(
        log,
        "--- {} starting {}",
        crate::persist::now_ms(),
        spec.program.display()
    );
    let stderr = log.try_clone().map_err(log_err)?;
    let mut cmd = tokio::process::Command::new(spec.program);
    cmd.args(spec.args)
        .current_dir(spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(false);
    // Its own process group, in the daemon's session: no terminal signal or signal to the
    // daemon's group reaches it, and with no code to run between fork and exec the C library
    // spawns it the fast way (posix_spawn, no copy of the daemon's page tables); a new session
    // would also put it in a new scheduler autogroup, which makes its start-up wait on a busy
    // host (see BENCHMARKS.md, StartVM to running).
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        program: spec.program.to_owned(),
        source,
    })?;
    let pid = child.id().unwrap_or_default();
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        use std::os::unix::process::ExitStatusExt;
        let exit = match child.wait().await {
            Ok(st) => ProcessExit {
                code: st.code(),
                signal: st.signal(),
            },
            Err(e) => {
                tracing::warn!(pid, error = %e, "waiting for QEMU failed");
                ProcessExit::default()
            }
        };
        let _ = tx.send(Some(exit));
    });
    Ok(QemuProcess { pid, exit: rx })
}

/// Watches a running QEMU of VM `vm_id` that this instance did not spawn. `None` when `pid` is
/// not (or no longer) that VM's QEMU.
pub fn adopt(pid: u32, vm_id: &VmId) -> Option<QemuProcess> {
    let pidfd = pidfd_open(pid);
    // Check after opening the pidfd: the pidfd then names the process that was checked.
    if !is_qemu_of(pid, vm_id) {
        return None;
    }
    let (tx, rx) = watch::channel(None);
    let id = vm_id.clone();
    tokio::spawn(async move {
        // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, so the descriptor stays open and
        // unchanged for the `AsyncFd`'s whole life.
        let registered = pidfd.and_then(|fd| {
            unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()
        });
        match registered {
            Some(fd) => {
                // A pidfd becomes readable when the process exits.
                let _ = fd.readable().await;
            }
            None => {
                while is_qemu_of(pid, &id) {
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
            }
        }
        let _ = tx.send(Some(ProcessExit::default()));
    });
    Some(QemuProcess { pid, exit: rx })
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; no memory
    // is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    let fd = i32::try_from(fd).ok()?;
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether `pid` is alive and is the QEMU of VM `vm_id` (its command line names the VM's UUID).
/// A zombie has an empty command line, so it does not count.
pub fn is_qemu_of(pid: u32, vm_id: &VmId) -> bool {
    if pid == 0 {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let needle = vm_id.as_str().as_bytes();
            cmdline.windows(needle.len()).any(|w| w == needle)
        }
        Err(_) => false,
    }
}

/// Reads a pidfile; `None` when it does not exist.
pub fn read_pidfile(path: &Path) -> Result<Option<u32>, ProcessError> {
    match std::fs::read_to_string(path) {
        Ok(s) => s
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|p| *p > 0)
            .map(Some)
            .ok_or_else(|| ProcessError::BadPidfile {
                path: path.to_owned(),
                content: s.chars().take(32).collect(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ProcessError::Pidfile {
            path: path.to_owned(),
            source,
        }),
    }
}

/// A signal to stop QEMU with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: QEMU shuts down cleanly (flushes disks, emits `SHUTDOWN`).
    Term,
    /// SIGKILL: immediate.
    Kill,
}

/// Sends `sig` to `pid` (errors such as "no such process" are ignored: the goal is that the
/// process is gone).
pub fn signal(pid: u32, sig: Signal) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        return;
    }
    let s = match sig {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    // SAFETY: kill(2) with a positive pid and a valid signal number; no memory is passed.
    unsafe {
        libc::kill(pid, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm_id() -> VmId {
        VmId::parse("0b7f3a52-6c1d-4e8f-9a2b-3c4d5e6f7a8b").unwrap()
    }

    /// A stand-in for QEMU: `sh -c 'sleep ...' <uuid>` carries the UUID in its command line.
    fn spawn_sleeper(dir: &Path, seconds: &str) -> QemuProcess {
        let args: Vec<OsString> = vec![
            "-c".into(),
            format!("echo started; sleep {seconds}; :").into(),
            vm_id().as_str().into(),
        ];
        spawn(&SpawnSpec {
            program: Path::new("/bin/sh"),
            args: &args,
            log: &dir.join("qemu.log"),
            cwd: dir,
        })
        .unwrap()
    }

    /// Waits until the kernel shows the new program's arguments: the spawner resumes as soon as
    /// the exec has replaced the address space, a moment before `/proc/<pid>/cmdline` is filled.
    async fn wait_for_cmdline(pid: u32) {
        for _ in 0..500 {
            if is_qemu_of(pid, &vm_id()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("pid {pid} never showed its arguments");
    }

    #[tokio::test]
    async fn spawned_process_is_in_its_own_process_group_and_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let p = spawn_sleeper(dir.path(), "30");
        let pid = p.pid();
        wait_for_cmdline(pid).await;
        // Own process group: its group id is its own pid.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(fields[2], pid.to_string(), "process group: {stat}");
        assert!(is_qemu_of(pid, &vm_id()));
        assert!(!is_qemu_of(pid, &VmId::generate()));

        let log = dir.path().join("qemu.log");
        for _ in 0..500 {
            if std::fs::read_to_string(&log).unwrap().contains("started") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        p.signal(Signal::Kill);
        let exit = p.wait_timeout(Duration::from_secs(5)).await.unwrap();
        assert_eq!(exit.signal, Some(libc::SIGKILL));
        // Reaped: no zombie is left.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        let log = std::fs::read_to_string(&log).unwrap();
        assert!(log.contains("--- ") && log.contains("started"), "{log}");
    }

    #[tokio::test]
    async fn adopted_process_exit_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let p = spawn_sleeper(dir.path(), "30");
        wait_for_cmdline(p.pid()).await;
        let adopted = adopt(p.pid(), &vm_id()).unwrap();
        assert!(adopt(p.pid(), &VmId::generate()).is_none());
        assert!(!adopted.has_exited());
        signal(p.pid(), Signal::Term);
        let exit = adopted.wait_timeout(Duration::from_secs(5)).await.unwrap();
        assert_eq!(exit, ProcessExit::default());
        assert_eq!(
            p.wait_timeout(Duration::from_secs(5)).await.unwrap().signal,
            Some(libc::SIGTERM)
        );
    }

    #[tokio::test]
    async fn exit_codes_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = spawn_sleeper(dir.path(), "0; exit 3");
        let exit = p.wait_timeout(Duration::from_secs(5)).await.unwrap();
        assert_eq!(exit.code, Some(3));
        assert_eq!(exit.to_string(), "exit code 3");
    }

    #[test]
    fn pidfiles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qemu.pid");
        assert_eq!(read_pidfile(&path).unwrap(), None);
        std::fs::write(&path, "1234\n").unwrap();
        assert_eq!(read_pidfile(&path).unwrap(), Some(1234));
        std::fs::write(&path, "garbage").unwrap();
        assert!(matches!(
            read_pidfile(&path),
            Err(ProcessError::BadPidfile { .. })
        ));
        assert!(!is_qemu_of(0, &vm_id()));
        assert!(!is_qemu_of(u32::MAX, &vm_id()));
    }
}
