//! Guest readiness: following a boot from "QEMU started" to "cloud-init done".
//!
//! The mechanism is push-based and needs nothing from the guest beyond what a cloud image already
//! does, so a user's user-data is never touched:
//!
//! 1. **Serial console.** QEMU writes the guest's serial console to `serial.log`.
//!    [`follow_serial_log`] tails that file as it grows and feeds each line to a
//!    [`ReadinessTracker`], which moves through the [`BootPhase`]s: firmware banner or boot loader
//!    → `Linux version` → cloud-init's `running 'init-local'`, `'init'`, `'modules:config'`,
//!    `'modules:final'` → `Cloud-init v. X finished`. Fatal console messages (`No bootable
//!    device`, iPXE's `Nothing to boot`, a kernel panic, the initramfs giving up on the root
//!    device) end the boot as [`BootPhase::Failed`].
//! 2. **Guest agent verdict.** Once the console says cloud-init finished (or the agent channel
//!    opens), the consumer asks qemu-guest-agent once for `cloud-init status --format json`
//!    ([`query_cloud_init_status`]) and hands the answer to
//!    [`ReadinessTracker::apply_cloud_init_status`]: `done` → [`BootPhase::Ready`], `error` →
//!    [`BootPhase::Failed`] carrying cloud-init's own error messages.
//! 3. **No agent.** A guest without an agent still reaches a verdict:
//!    [`ReadinessTracker::conclude_from_serial`] decides from the console alone (ready unless
//!    cloud-init printed failures).
//!
//! The tracker is pure (no I/O, no clock) so it is tested on captured serial logs; timing is the
//! consumer's business.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::qga::{QgaClient, QgaError};

/// How many cloud-init problem lines the tracker keeps per boot.
const MAX_PROBLEMS: usize = 20;
/// A console "line" longer than this is cut, so a guest printing no newlines cannot grow memory.
const MAX_LINE: usize = 64 * 1024;

/// Where a guest is on its way to "ready".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum BootPhase {
    /// QEMU is running; the guest has printed nothing recognisable yet.
    QemuStarted,
    /// The firmware or the boot loader is running (SeaBIOS, OVMF, syslinux, GRUB).
    Firmware,
    /// The guest kernel has started.
    KernelRunning,
    /// cloud-init is running the given stage.
    CloudInitRunning {
        /// The stage last reported on the console.
        stage: CloudInitStage,
    },
    /// cloud-init finished without errors: the guest is configured.
    Ready,
    /// The boot cannot reach ready without intervention.
    Failed {
        /// Why.
        reason: BootFailure,
    },
}

impl BootPhase {
    /// Whether the phase is final for this boot (`Ready` or `Failed`).
    pub fn is_terminal(&self) -> bool {
        matches!(self, BootPhase::Ready | BootPhase::Failed { .. })
    }

    /// Ordering of phases within one boot, used to refuse going backwards.
    fn rank(&self) -> u8 {
        match self {
            BootPhase::QemuStarted => 0,
            BootPhase::Firmware => 1,
            BootPhase::KernelRunning => 2,
            BootPhase::CloudInitRunning { stage } => 3 + *stage as u8,
            BootPhase::Ready | BootPhase::Failed { .. } => 10,
        }
    }
}

impl std::fmt::Display for BootPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootPhase::QemuStarted => f.write_str("qemu started"),
            BootPhase::Firmware => f.write_str("firmware"),
            BootPhase::KernelRunning => f.write_str("kernel running"),
            BootPhase::CloudInitRunning { stage } => write!(f, "cloud-init {stage}"),
            BootPhase::Ready => f.write_str("ready"),
            BootPhase::Failed { reason } => write!(f, "failed: {reason}"),
        }
    }
}

/// cloud-init's stages, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloudInitStage {
    /// `init-local`: before networking, finds a local datasource (the NoCloud seed).
    InitLocal,
    /// `init`: networking up, users, SSH keys, disk growth.
    Init,
    /// `modules:config`.
    ModulesConfig,
    /// `modules:final`: packages, `runcmd`, scripts.
    ModulesFinal,
    /// The console says cloud-init finished; its verdict is not known yet.
    Finished,
}

impl CloudInitStage {
    /// The stage for the name cloud-init prints in `running '<name>'`.
    pub fn from_console_name(name: &str) -> Option<Self> {
        match name {
            "init-local" => Some(Self::InitLocal),
            "init" => Some(Self::Init),
            "modules:config" => Some(Self::ModulesConfig),
            "modules:final" => Some(Self::ModulesFinal),
            _ => None,
        }
    }
}

impl std::fmt::Display for CloudInitStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InitLocal => "init-local",
            Self::Init => "init",
            Self::ModulesConfig => "modules:config",
            Self::ModulesFinal => "modules:final",
            Self::Finished => "finished",
        })
    }
}

/// Why a boot failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BootFailure {
    /// The firmware found nothing to boot.
    NothingBootable {
        /// The firmware's message.
        message: String,
    },
    /// The guest kernel panicked.
    KernelPanic {
        /// The panic line.
        message: String,
    },
    /// The initramfs could not find the root filesystem.
    RootNotFound {
        /// The initramfs' message.
        message: String,
    },
    /// cloud-init reported errors.
    CloudInit {
        /// cloud-init's error messages (from `cloud-init status`, or from the console when the
        /// guest has no agent).
        errors: Vec<String>,
    },
}

impl std::fmt::Display for BootFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootFailure::NothingBootable { message } => {
                write!(f, "nothing bootable ({message})")
            }
            BootFailure::KernelPanic { message } => write!(f, "guest kernel panic ({message})"),
            BootFailure::RootNotFound { message } => {
                write!(f, "guest root filesystem not found ({message})")
            }
            BootFailure::CloudInit { errors } if errors.is_empty() => {
                f.write_str("cloud-init reported an error")
            }
            BootFailure::CloudInit { errors } => {
                write!(f, "cloud-init reported errors: {}", errors.join("; "))
            }
        }
    }
}

/// What one console line says, as far as readiness is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// SeaBIOS printed its banner: a (re)boot starts.
    FirmwareBanner,
    /// Firmware or boot-loader progress (`Booting from Hard Disk`, syslinux, GRUB, OVMF's BdsDxe).
    BootLoader,
    /// The firmware gave up: nothing bootable.
    NothingBootable(String),
    /// `Linux version ...`: a kernel started.
    KernelStarted,
    /// `Kernel panic - not syncing: ...`.
    KernelPanic(String),
    /// The initramfs gave up waiting for the root device.
    RootNotFound(String),
    /// `Cloud-init v. X running '<stage>'`.
    CloudInitStage {
        /// cloud-init's version.
        version: String,
        /// The stage.
        stage: CloudInitStage,
    },
    /// `Cloud-init v. X finished at ... Datasource D.  Up N seconds`.
    CloudInitFinished {
        /// cloud-init's version.
        version: String,
        /// The datasource it used (`DataSourceNoCloud [seed=/dev/sr0][dsmode=net]`,
        /// `DataSourceNone` when no seed was found).
        datasource: String,
    },
    /// A cloud-init warning or error that reports a failure.
    CloudInitProblem(String),
}

/// Removes terminal escape sequences and control characters from a console line.
pub fn clean_console_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            match chars.peek() {
                // CSI: ESC [ parameters/intermediates, then one final byte in @..~.
                Some('[') => {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // Two-character sequences such as ESC c (reset).
                Some(_) => {
                    chars.next();
                }
                None => {}
            }
        } else if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// Classifies one console line (escapes and control characters are ignored).
pub fn classify_console_line(raw: &str) -> Option<ConsoleEvent> {
    let line = clean_console_line(raw);
    let line = line.as_str();
    if let Some(event) = classify_cloud_init(line) {
        return Some(event);
    }
    if line.contains("Linux version ") && !line.contains("cloud-init") {
        return Some(ConsoleEvent::KernelStarted);
    }
    if line.contains("SeaBIOS (version") {
        return Some(ConsoleEvent::FirmwareBanner);
    }
    const NOTHING_BOOTABLE: [&str; 3] = [
        "No bootable device",
        "Nothing to boot",
        "No bootable option or device was found",
    ];
    if NOTHING_BOOTABLE.iter().any(|m| line.contains(m)) {
        return Some(ConsoleEvent::NothingBootable(line.to_string()));
    }
    const BOOT_LOADER: [&str; 6] = [
        "Booting from ",
        "SYSLINUX ",
        "ISOLINUX ",
        "GRUB",
        "BdsDxe: loading",
        "BdsDxe: starting",
    ];
    if BOOT_LOADER.iter().any(|m| line.contains(m)) {
        return Some(ConsoleEvent::BootLoader);
    }
    if let Some(at) = line.find("Kernel panic - not syncing") {
        return Some(ConsoleEvent::KernelPanic(line[at..].to_string()));
    }
    if line.contains("Gave up waiting for root file system device")
        || line.contains("Unable to mount root fs")
    {
        return Some(ConsoleEvent::RootNotFound(line.to_string()));
    }
    None
}

/// cloud-init's console lines: stage banners, the final line, and failure reports.
fn classify_cloud_init(line: &str) -> Option<ConsoleEvent> {
    if let Some(at) = line.find("Cloud-init v. ") {
        let rest = &line[at + "Cloud-init v. ".len()..];
        let (version, rest) = rest.split_once(' ')?;
        let version = version.to_string();
        if let Some(rest) = rest.strip_prefix("running '") {
            let stage = CloudInitStage::from_console_name(rest.split('\'').next()?)?;
            return Some(ConsoleEvent::CloudInitStage { version, stage });
        }
        if rest.starts_with("finished at ") {
            let datasource = rest
                .split_once("Datasource ")
                .map(|(_, ds)| ds.split(".  Up ").next().unwrap_or(ds))
                .unwrap_or("")
                .trim_end_matches('.')
                .to_string();
            return Some(ConsoleEvent::CloudInitFinished {
                version,
                datasource,
            });
        }
        return None;
    }
    // Logged problems look like `2024-05-01 12:00:00,000 - util.py[WARNING]: Failed running ...`.
    for level in ["[ERROR]: ", "[CRITICAL]: ", "[WARNING]: "] {
        let Some(at) = line.find(level) else { continue };
        if !line[..at].ends_with(".py") {
            continue;
        }
        let message = line[at + level.len()..].trim();
        let is_failure = level != "[WARNING]: " || message.to_ascii_lowercase().contains("fail");
        return is_failure.then(|| ConsoleEvent::CloudInitProblem(message.to_string()));
    }
    None
}

/// cloud-init's own verdict, as printed by `cloud-init status --format json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CloudInitStatus {
    /// `not run`, `running`, `done`, `error` or `disabled`.
    pub status: String,
    /// Newer cloud-init: `degraded done`, `error - running`, ...
    #[serde(default)]
    pub extended_status: Option<String>,
    /// Error messages of the modules that failed.
    #[serde(default)]
    pub errors: Vec<String>,
    /// A one-line description (the datasource and its seed).
    #[serde(default)]
    pub detail: Option<String>,
    /// The datasource's short name (`nocloud`, ...), when known.
    #[serde(default)]
    pub datasource: Option<String>,
}

/// [`CloudInitStatus::status`], as a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudInitState {
    /// cloud-init has not started.
    NotRun,
    /// cloud-init is running.
    Running,
    /// Finished without errors.
    Done,
    /// Finished with errors.
    Error,
    /// Disabled in this guest.
    Disabled,
    /// A value this version does not know.
    Unknown,
}

impl CloudInitStatus {
    /// Parses the JSON printed by `cloud-init status --format json`.
    pub fn parse(json: &[u8]) -> Result<Self, ReadinessError> {
        serde_json::from_slice(json).map_err(|e| ReadinessError::StatusJson {
            problem: e.to_string(),
        })
    }

    /// The status as a closed set.
    pub fn state(&self) -> CloudInitState {
        match self.status.as_str() {
            "not run" | "not started" => CloudInitState::NotRun,
            "running" => CloudInitState::Running,
            "done" => CloudInitState::Done,
            "error" => CloudInitState::Error,
            "disabled" => CloudInitState::Disabled,
            _ => CloudInitState::Unknown,
        }
    }
}

/// Errors of the readiness helpers that do I/O.
#[derive(Debug, thiserror::Error)]
pub enum ReadinessError {
    /// The serial log could not be read.
    #[error("reading serial log {path}")]
    SerialLog {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The guest agent did not answer.
    #[error("asking the guest agent for cloud-init's status")]
    Agent(#[source] QgaError),
    /// `cloud-init status` printed something that is not its JSON status.
    #[error("cloud-init status output is not valid JSON: {problem}")]
    StatusJson {
        /// The parser's complaint.
        problem: String,
    },
    /// `cloud-init status` could not run in the guest.
    #[error("cloud-init status did not run in the guest (exit code {exit_code:?}): {stderr}")]
    StatusCommand {
        /// Its exit code, when it exited.
        exit_code: Option<i64>,
        /// The start of its standard error.
        stderr: String,
    },
}

/// Follows one VM's boot phases from console lines and the guest agent's verdict.
#[derive(Debug, Clone)]
pub struct ReadinessTracker {
    phase: BootPhase,
    cloud_init_version: Option<String>,
    datasource: Option<String>,
    problems: Vec<String>,
    agent_answered: bool,
}

impl Default for ReadinessTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl ReadinessTracker {
    /// A tracker for a QEMU process that just started.
    pub fn new() -> Self {
        Self {
            phase: BootPhase::QemuStarted,
            cloud_init_version: None,
            datasource: None,
            problems: Vec::new(),
            agent_answered: false,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> &BootPhase {
        &self.phase
    }

    /// cloud-init's version, once it printed a stage banner.
    pub fn cloud_init_version(&self) -> Option<&str> {
        self.cloud_init_version.as_deref()
    }

    /// The datasource cloud-init reported on its final line (`DataSourceNone` means it found no
    /// seed and the guest is unconfigured).
    pub fn datasource(&self) -> Option<&str> {
        self.datasource.as_deref()
    }

    /// Failure lines cloud-init printed on the console during this boot.
    pub fn console_problems(&self) -> &[String] {
        &self.problems
    }

    /// Whether the guest agent has answered during this boot.
    pub fn agent_answered(&self) -> bool {
        self.agent_answered
    }

    /// Whether the consumer should now ask the guest agent for cloud-init's verdict: the console
    /// says cloud-init finished and no verdict is known yet.
    pub fn wants_agent_verdict(&self) -> bool {
        self.phase
            == BootPhase::CloudInitRunning {
                stage: CloudInitStage::Finished,
            }
    }

    /// Feeds one console line; returns the new phase when it changed.
    pub fn feed_line(&mut self, line: &str) -> Option<BootPhase> {
        let event = classify_console_line(line)?;
        self.apply_console_event(event)
    }

    /// Applies a classified console event; returns the new phase when it changed.
    pub fn apply_console_event(&mut self, event: ConsoleEvent) -> Option<BootPhase> {
        match event {
            ConsoleEvent::FirmwareBanner => {
                // A banner after the kernel ran means the guest rebooted: a new boot.
                self.reset();
                self.set(BootPhase::Firmware)
            }
            ConsoleEvent::BootLoader => self.advance(BootPhase::Firmware),
            ConsoleEvent::NothingBootable(message) => {
                if self.phase.rank() >= BootPhase::KernelRunning.rank() {
                    return None;
                }
                self.set(BootPhase::Failed {
                    reason: BootFailure::NothingBootable { message },
                })
            }
            ConsoleEvent::KernelStarted => {
                self.reset();
                self.set(BootPhase::KernelRunning)
            }
            ConsoleEvent::KernelPanic(message) => self.set(BootPhase::Failed {
                reason: BootFailure::KernelPanic { message },
            }),
            ConsoleEvent::RootNotFound(message) => self.set(BootPhase::Failed {
                reason: BootFailure::RootNotFound { message },
            }),
            ConsoleEvent::CloudInitStage { version, stage } => {
                self.cloud_init_version = Some(version);
                self.advance(BootPhase::CloudInitRunning { stage })
            }
            ConsoleEvent::CloudInitFinished {
                version,
                datasource,
            } => {
                self.cloud_init_version = Some(version);
                self.datasource = Some(datasource);
                self.advance(BootPhase::CloudInitRunning {
                    stage: CloudInitStage::Finished,
                })
            }
            ConsoleEvent::CloudInitProblem(message) => {
                if self.problems.len() < MAX_PROBLEMS && !self.problems.contains(&message) {
                    self.problems.push(message);
                }
                None
            }
        }
    }

    /// Records that the guest agent answered (e.g. `guest-ping`). An answering agent proves the
    /// kernel runs, so an earlier phase moves to [`BootPhase::KernelRunning`].
    pub fn agent_responded(&mut self) -> Option<BootPhase> {
        self.agent_answered = true;
        self.advance(BootPhase::KernelRunning)
    }

    /// Applies cloud-init's own verdict from the guest agent; it overrides the console's.
    /// `running`/`not run` change nothing beyond proving the kernel runs.
    pub fn apply_cloud_init_status(&mut self, status: &CloudInitStatus) -> Option<BootPhase> {
        let changed = self.agent_responded();
        let verdict = match status.state() {
            CloudInitState::Done | CloudInitState::Disabled => BootPhase::Ready,
            CloudInitState::Error => BootPhase::Failed {
                reason: BootFailure::CloudInit {
                    errors: status.errors.clone(),
                },
            },
            CloudInitState::NotRun | CloudInitState::Running | CloudInitState::Unknown => {
                return changed;
            }
        };
        self.set(verdict)
    }

    /// Decides from the console alone, for a guest whose agent does not answer: once cloud-init
    /// printed its final line, ready unless it printed failures. Returns the new phase when it
    /// changed.
    pub fn conclude_from_serial(&mut self) -> Option<BootPhase> {
        if !self.wants_agent_verdict() {
            return None;
        }
        if self.problems.is_empty() {
            self.set(BootPhase::Ready)
        } else {
            let errors = self.problems.clone();
            self.set(BootPhase::Failed {
                reason: BootFailure::CloudInit { errors },
            })
        }
    }

    /// Forgets everything about the previous boot.
    fn reset(&mut self) {
        self.problems.clear();
        self.datasource = None;
        self.agent_answered = false;
    }

    /// Moves forward only (within one boot, phases never go back).
    fn advance(&mut self, next: BootPhase) -> Option<BootPhase> {
        if next.rank() > self.phase.rank() {
            self.set(next)
        } else {
            None
        }
    }

    fn set(&mut self, next: BootPhase) -> Option<BootPhase> {
        if next == self.phase {
            return None;
        }
        self.phase = next.clone();
        Some(next)
    }
}

/// Asks the guest agent for `cloud-init status --format json` once, within `limit`.
/// cloud-init exits non-zero when its status is `error`; the JSON on standard output is read
/// either way.
pub async fn query_cloud_init_status(
    qga: &QgaClient,
    limit: Duration,
) -> Result<CloudInitStatus, ReadinessError> {
    let out = qga
        .exec_wait("cloud-init", &["status", "--format", "json"], limit)
        .await
        .map_err(ReadinessError::Agent)?;
    if out.stdout.is_empty() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(ReadinessError::StatusCommand {
            exit_code: out.exit_code,
            stderr: stderr.chars().take(500).collect(),
        });
    }
    CloudInitStatus::parse(&out.stdout)
}

/// Reads a growing console log line by line, from a byte offset.
///
/// The file is read as QEMU appends to it (a stat and a read per poll interval; no guest
/// involvement). A file that shrinks (replaced or truncated) is read again from the start.
#[derive(Debug)]
pub struct SerialLogTail {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    /// Offset of the first byte not yet returned as part of a complete line.
    offset: u64,
    partial: Vec<u8>,
    poll: Duration,
}

impl SerialLogTail {
    /// A tail of `path` starting at `offset` (0 for the whole file; the file's length at QEMU
    /// start to skip earlier boots). The file need not exist yet.
    pub fn new(path: impl Into<PathBuf>, offset: u64) -> Self {
        Self {
            path: path.into(),
            file: None,
            offset,
            partial: Vec::new(),
            poll: Duration::from_millis(100),
        }
    }

    /// Changes how long to wait between reads when nothing new was written.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The offset just past the last complete line returned (where a new tail would resume).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The complete lines written since the last call, without waiting (empty when none).
    pub async fn read_available(&mut self) -> Result<Vec<String>, ReadinessError> {
        self.read_new()
            .await
            .map_err(|source| ReadinessError::SerialLog {
                path: self.path.clone(),
                source,
            })
    }

    /// Waits until at least one new complete line is written, and returns all of them.
    pub async fn next_lines(&mut self) -> Result<Vec<String>, ReadinessError> {
        loop {
            let lines = self.read_available().await?;
            if !lines.is_empty() {
                return Ok(lines);
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn read_new(&mut self) -> std::io::Result<Vec<String>> {
        if self.file.is_none() {
            match tokio::fs::File::open(&self.path).await {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(Vec::new());
        };
        let len = file.metadata().await?.len();
        let read_from = self.offset + self.partial.len() as u64;
        if len < read_from {
            // Truncated or replaced: start over.
            self.offset = 0;
            self.partial.clear();
            self.file = None;
            return Ok(Vec::new());
        }
        if len == read_from {
            return Ok(Vec::new());
        }
        file.seek(SeekFrom::Start(read_from)).await?;
        let mut buf = Vec::with_capacity((len - read_from).min(1 << 20) as usize);
        file.take(len - read_from).read_to_end(&mut buf).await?;
        self.partial.extend_from_slice(&buf);
        Ok(self.split_lines())
    }

    /// Takes the complete lines out of the partial buffer.
    fn split_lines(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(nl) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl;
            lines.push(String::from_utf8_lossy(&self.partial[start..end]).into_owned());
            start = end + 1;
        }
        if self.partial.len() - start > MAX_LINE {
            lines.push(String::from_utf8_lossy(&self.partial[start..]).into_owned());
            start = self.partial.len();
        }
        self.offset += start as u64;
        self.partial.drain(..start);
        lines
    }
}

/// Tails `tail`'s log and feeds every line to `tracker`, sending each phase change on `changes`.
///
/// Keeps following after a terminal phase, so a guest reboot (a new firmware banner or kernel)
/// starts a new boot in the tracker. Returns when every receiver of `changes` is dropped; cancel
/// it earlier by aborting its task.
pub async fn follow_serial_log(
    mut tail: SerialLogTail,
    tracker: Arc<Mutex<ReadinessTracker>>,
    changes: tokio::sync::mpsc::Sender<BootPhase>,
) -> Result<(), ReadinessError> {
    loop {
        let lines = tail.next_lines().await?;
        let new_phases: Vec<BootPhase> = {
            let mut t = lock(&tracker);
            lines.iter().filter_map(|l| t.feed_line(l)).collect()
        };
        for phase in new_phases {
            if changes.send(phase).await.is_err() {
                return Ok(());
            }
        }
        if changes.is_closed() {
            return Ok(());
        }
    }
}

/// The tracker behind a mutex (a poisoned lock still holds a usable tracker).
fn lock(tracker: &Mutex<ReadinessTracker>) -> std::sync::MutexGuard<'_, ReadinessTracker> {
    tracker.lock().unwrap_or_else(|p| p.into_inner())
}

/// Settings of [`watch_boot`].
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How long after the console says cloud-init finished the agent may stay silent before the
    /// verdict comes from the console alone.
    pub agent_grace: Duration,
    /// The time limit of one `cloud-init status` call through the agent.
    pub agent_call_limit: Duration,
    /// The pause between two reads of the serial log when nothing new was written.
    pub poll: Duration,
    /// How long after its agent opened a guest may show no cloud-init on its console before
    /// the agent is asked for cloud-init's status instead (every [`WatchOptions::agent_poll`]).
    pub silent_console: Duration,
    /// The pause between two status questions to the agent of a guest whose console is silent.
    pub agent_poll: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            agent_grace: Duration::from_secs(30),
            agent_call_limit: Duration::from_secs(20),
            poll: Duration::from_millis(100),
            silent_console: Duration::from_secs(30),
            agent_poll: Duration::from_secs(10),
        }
    }
}

/// Follows a VM's boots for as long as it runs: tails `tail`'s serial log into `tracker`, asks
/// the guest agent for cloud-init's verdict once the console says cloud-init finished, falls
/// back to the console's verdict after [`WatchOptions::agent_grace`], and calls `on_change`
/// with every phase change. When `agent_opened` is notified (QMP `VSERPORT_CHANGE` with `open:
/// true`) the agent is only pinged: `cloud-init status` is a Python process in the guest, so it
/// is not run while cloud-init works, unless the console stays silent about cloud-init for
/// [`WatchOptions::silent_console`] after the agent opened (then it is asked every
/// [`WatchOptions::agent_poll`]). Never returns on its own except on a serial-log read error:
/// abort its task when QEMU exits.
pub async fn watch_boot(
    mut tail: SerialLogTail,
    tracker: Arc<Mutex<ReadinessTracker>>,
    qga: Arc<QgaClient>,
    agent_opened: Option<Arc<tokio::sync::Notify>>,
    opts: WatchOptions,
    mut on_change: impl FnMut(&BootPhase) + Send,
) -> Result<(), ReadinessError> {
    // When the console first said "finished" in the current boot, if it did.
    let mut finished_since: Option<tokio::time::Instant> = None;
    let mut ask_agent = false;
    // When the agent channel opened, and when the agent was last asked for cloud-init's status.
    let mut agent_open_since: Option<tokio::time::Instant> = None;
    let mut agent_opened_now = false;
    let mut last_asked: Option<tokio::time::Instant> = None;
    loop {
        if std::mem::take(&mut agent_opened_now) {
            agent_open_since.get_or_insert_with(tokio::time::Instant::now);
            let ping = tokio::time::timeout(opts.agent_call_limit, qga.ping()).await;
            let change = match ping {
                Ok(Ok(())) => lock(&tracker).agent_responded(),
                _ => None,
            };
            if let Some(phase) = change {
                on_change(&phase);
            }
        }
        let lines = tail.read_available().await?;
        let changes: Vec<BootPhase> = {
            let mut t = lock(&tracker);
            lines.iter().filter_map(|l| t.feed_line(l)).collect()
        };
        for phase in &changes {
            on_change(phase);
        }
        let wants_verdict = lock(&tracker).wants_agent_verdict();
        if !wants_verdict {
            finished_since = None;
        } else if finished_since.is_none() {
            finished_since = Some(tokio::time::Instant::now());
            ask_agent = true;
        }
        // A guest whose console says nothing of cloud-init: ask its agent, now and then.
        let silent = {
            let t = lock(&tracker);
            !t.phase().is_terminal() && t.cloud_init_version().is_none()
        };
        if silent
            && agent_open_since.is_some_and(|t| t.elapsed() >= opts.silent_console)
            && last_asked.is_none_or(|t| t.elapsed() >= opts.agent_poll)
        {
            ask_agent = true;
        }
        if ask_agent {
            ask_agent = false;
            last_asked = Some(tokio::time::Instant::now());
            let not_terminal = !lock(&tracker).phase().is_terminal();
            if not_terminal {
                let answer = query_cloud_init_status(&qga, opts.agent_call_limit).await;
                let change = match answer {
                    Ok(status) => lock(&tracker).apply_cloud_init_status(&status),
                    Err(e) => {
                        tracing::debug!(error = %e, "no cloud-init verdict from the guest agent yet");
                        None
                    }
                };
                if let Some(phase) = change {
                    on_change(&phase);
                }
            }
        }
        // Still undecided after the console said "finished": ask again, or give up on the agent.
        let undecided = finished_since.filter(|_| lock(&tracker).wants_agent_verdict());
        if let Some(since) = undecided {
            if since.elapsed() >= opts.agent_grace {
                let change = lock(&tracker).conclude_from_serial();
                if let Some(phase) = change {
                    on_change(&phase);
                }
            } else {
                ask_agent = true;
            }
        }
        let pause = if ask_agent {
            Duration::from_secs(2).max(opts.poll)
        } else {
            opts.poll
        };
        match &agent_opened {
            Some(n) => {
                tokio::select! {
                    () = n.notified() => agent_opened_now = true,
                    () = tokio::time::sleep(pause) => {}
                }
            }
            None => tokio::time::sleep(pause).await,
        }
    }
}

#[cfg(test)]
mod tests;
