//! Operations inside a running guest through its agent: commands, files, shutdown, freezing
//! filesystems, the clock. Every call goes through the VM's one agent client (QEMU serves one
//! agent connection at a time), never through the VM's operation lock: a command running for
//! minutes does not hold up a stop. Logs name the VM and the agent command, never file
//! contents or standard input.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::core::QemuBackend;
use super::vm::{FreezeRecord, Vm};
use crate::qga::{ExecStatus, QgaClient, QgaError};
use limiquantix_vm::guest_ops::{
    EXEC_OUTPUT_CAP, FILE_MAX, FreezeRequest, FreezeResult, GuestExec, GuestExecResult,
    GuestFileData, GuestFileRead, GuestFileWrite, GuestShutdownMode, ThawResult, TimeSyncResult,
    cap_output,
};
use limiquantix_vm::model::VmId;
use limiquantix_vm::{BackendError, VmState};

/// How long a helper command (`mkdir -p`, `chmod`) of a file write may take.
const HELPER_LIMIT: Duration = Duration::from_secs(30);

/// How long a command killed after its timeout is waited for, to collect its end.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Numbers the freezes of this process.
static FREEZES: AtomicU64 = AtomicU64::new(1);

type Result<T> = std::result::Result<T, BackendError>;

impl QemuBackend {
    /// The VM and its agent client, when the VM runs.
    fn agent_for(&self, id: &VmId) -> Result<(Arc<Vm>, Arc<QgaClient>)> {
        let vm = self.vm(id)?;
        let state = vm.cell().state;
        if state != VmState::Running {
            return Err(BackendError::NotRunning {
                vm_id: id.clone(),
                state,
            });
        }
        let qga = vm.qga.clone();
        Ok((vm, qga))
    }

    /// Runs a command in the guest (see [`limiquantix_vm::VmBackend::guest_exec`]).
    pub async fn guest_exec(&self, id: &VmId, exec: GuestExec) -> Result<GuestExecResult> {
        let (_, qga) = self.agent_for(id)?;
        tracing::info!(vm_id = %id, command = "guest-exec", program = %exec.path,
            args = exec.args.len(), wait = exec.wait, timeout_s = exec.timeout.as_secs(), "guest command");
        let env: Vec<String> = exec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let started = Instant::now();
        let pid = qga
            .exec_with(&exec.path, &exec.args, &env, exec.input.as_deref())
            .await
            .map_err(|e| agent_error(id, "guest-exec", e))?;
        if !exec.wait {
            return Ok(GuestExecResult {
                pid,
                duration: started.elapsed(),
                ..GuestExecResult::default()
            });
        }
        if let Some(st) = poll_exit(&qga, pid, started + exec.timeout)
            .await
            .map_err(|e| agent_error(id, "guest-exec-status", e))?
        {
            return Ok(exec_result(pid, st, started.elapsed()));
        }
        // QGA cannot kill; the guest's own `kill` can, by the guest pid guest-exec returned.
        let kill_sent = qga
            .exec_with(
                "/bin/sh",
                &[
                    "-c".into(),
                    "kill -KILL \"$1\"".into(),
                    "kill".into(),
                    pid.to_string(),
                ],
                &[],
                None,
            )
            .await
            .is_ok();
        tracing::warn!(vm_id = %id, command = "guest-exec", pid, kill_sent, "guest command timed out");
        let end = poll_exit(&qga, pid, Instant::now() + KILL_GRACE).await;
        let mut result = match end {
            Ok(Some(st)) => exec_result(pid, st, started.elapsed()),
            _ => GuestExecResult {
                pid,
                duration: started.elapsed(),
                ..GuestExecResult::default()
            },
        };
        result.timed_out = true;
        result.kill_sent = kill_sent;
        Ok(result)
    }

    /// Reads part of a guest file.
    pub async fn guest_read_file(&self, id: &VmId, read: GuestFileRead) -> Result<GuestFileData> {
        let max = read.max_bytes.min(FILE_MAX);
        let (_, qga) = self.agent_for(id)?;
        tracing::info!(vm_id = %id, command = "guest-file-read", path = %read.path,
            offset = read.offset, max_bytes = max, "guest file read");
        let (data, total_size, eof) = qga
            .read_range(&read.path, read.offset, max as usize)
            .await
            .map_err(|e| agent_error(id, "guest-file-read", e))?;
        Ok(GuestFileData {
            data,
            total_size,
            eof,
        })
    }

    /// Writes a guest file; returns the bytes written.
    pub async fn guest_write_file(&self, id: &VmId, write: GuestFileWrite) -> Result<u64> {
        if write.data.len() as u64 > FILE_MAX {
            return Err(BackendError::Invalid(format!(
                "data: {} bytes is more than the {FILE_MAX} a write may hold",
                write.data.len()
            )));
        }
        let (_, qga) = self.agent_for(id)?;
        tracing::info!(vm_id = %id, command = "guest-file-write", path = %write.path,
            bytes = write.data.len(), append = write.append, "guest file write");
        if write.create_parents
            && let Some((dir, _)) = write.path.rsplit_once('/')
            && !dir.is_empty()
        {
            helper(id, &qga, &["mkdir", "-p", "--", dir]).await?;
        }
        let written = qga
            .write_all(&write.path, &write.data, write.append)
            .await
            .map_err(|e| agent_error(id, "guest-file-write", e))?;
        if let Some(mode) = write.mode {
            helper(
                id,
                &qga,
                &["chmod", &format!("{mode:o}"), "--", &write.path],
            )
            .await?;
        }
        Ok(written)
    }

    /// Asks the agent to shut the guest down.
    pub async fn guest_shutdown(&self, id: &VmId, mode: GuestShutdownMode) -> Result<()> {
        let (_, qga) = self.agent_for(id)?;
        let mode = match mode {
            GuestShutdownMode::Poweroff => "powerdown",
            GuestShutdownMode::Reboot => "reboot",
            GuestShutdownMode::Halt => "halt",
        };
        tracing::info!(vm_id = %id, command = "guest-shutdown", mode, "guest shutdown");
        qga.shutdown(mode)
            .await
            .map_err(|e| agent_error(id, "guest-shutdown", e))
    }

    /// Freezes guest filesystems and arms the automatic thaw.
    pub async fn guest_fsfreeze(&self, id: &VmId, req: FreezeRequest) -> Result<FreezeResult> {
        let (vm, qga) = self.agent_for(id)?;
        tracing::info!(vm_id = %id, command = "guest-fsfreeze-freeze", mount_points = req.mount_points.len(),
            auto_thaw_s = req.auto_thaw.as_secs(), "guest filesystem freeze");
        let frozen = qga
            .fsfreeze(&req.mount_points)
            .await
            .map_err(|e| agent_error(id, "guest-fsfreeze-freeze", e))?;
        let token = format!("fsfreeze-{}", FREEZES.fetch_add(1, Ordering::Relaxed));
        let timer = tokio::spawn(auto_thaw(vm.clone(), token.clone(), req.auto_thaw));
        let record = FreezeRecord {
            token: token.clone(),
            since: std::time::Instant::now(),
            timer: timer.abort_handle(),
        };
        if let Some(old) = lock(&vm).replace(record) {
            old.timer.abort();
        }
        Ok(FreezeResult { frozen, token })
    }

    /// Thaws the guest's filesystems.
    pub async fn guest_fsthaw(&self, id: &VmId) -> Result<ThawResult> {
        let (vm, qga) = self.agent_for(id)?;
        tracing::info!(vm_id = %id, command = "guest-fsfreeze-thaw", "guest filesystem thaw");
        let thawed = qga
            .fsthaw()
            .await
            .map_err(|e| agent_error(id, "guest-fsfreeze-thaw", e))?;
        let record = lock(&vm).take();
        if let Some(r) = &record {
            r.timer.abort();
        }
        Ok(ThawResult {
            thawed,
            frozen_for: record.map(|r| r.since.elapsed()),
        })
    }

    /// Sets the guest's clock (to the host's when `time_ns` is `None`).
    pub async fn guest_set_time(&self, id: &VmId, time_ns: Option<i64>) -> Result<TimeSyncResult> {
        let (_, qga) = self.agent_for(id)?;
        tracing::info!(vm_id = %id, command = "guest-set-time", host_clock = time_ns.is_none(), "guest clock");
        // The offset before, when the agent tells its time (it may have that command disabled).
        let offset_ns = qga
            .get_time()
            .await
            .ok()
            .map(|g| g.saturating_sub(time_ns.unwrap_or_else(now_ns)));
        let set_to_ns = time_ns.unwrap_or_else(now_ns);
        let warning = match qga.set_time(set_to_ns).await {
            Ok(()) => None,
            // The agent sets the system clock first, then runs `hwclock`: its failure leaves
            // the system clock set.
            Err(QgaError::Command { desc, .. }) if desc.contains("hwclock") => {
                tracing::warn!(vm_id = %id, command = "guest-set-time", problem = %desc, "hardware clock not written");
                Some(format!("system clock set; hardware clock not: {desc}"))
            }
            Err(e) => return Err(agent_error(id, "guest-set-time", e)),
        };
        Ok(TimeSyncResult {
            offset_ns,
            set_to_ns,
            warning,
        })
    }
}

/// The VM's freeze record.
fn lock(vm: &Vm) -> std::sync::MutexGuard<'_, Option<FreezeRecord>> {
    vm.freeze.lock().unwrap_or_else(|p| p.into_inner())
}

/// Thaws after `after` unless the freeze `token` was thawed (or replaced) meanwhile.
async fn auto_thaw(vm: Arc<Vm>, token: String, after: Duration) {
    tokio::time::sleep(after).await;
    {
        let mut rec = lock(&vm);
        if rec.as_ref().map(|r| r.token.as_str()) != Some(token.as_str()) {
            return;
        }
        *rec = None;
    }
    match vm.qga.fsthaw().await {
        Ok(n) => tracing::warn!(vm_id = %vm.id, command = "guest-fsfreeze-thaw", thawed = n,
            after_s = after.as_secs(), "no thaw came: filesystems thawed automatically"),
        Err(e) => tracing::warn!(vm_id = %vm.id, command = "guest-fsfreeze-thaw", error = %e,
            "the automatic thaw failed"),
    }
}

/// Polls `guest-exec-status` until the command ends (`Some`) or `deadline` passes (`None`).
async fn poll_exit(
    qga: &QgaClient,
    pid: i64,
    deadline: Instant,
) -> std::result::Result<Option<ExecStatus>, QgaError> {
    let mut pause = Duration::from_millis(20);
    loop {
        let st = qga.exec_status(pid).await?;
        if st.exited {
            return Ok(Some(st));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Runs a small command of ours (argv) to completion; anything but exit 0 is refused.
async fn helper(id: &VmId, qga: &QgaClient, argv: &[&str]) -> Result<()> {
    let args: Vec<String> = argv[1..].iter().map(|s| s.to_string()).collect();
    let pid = qga
        .exec_with(argv[0], &args, &[], None)
        .await
        .map_err(|e| agent_error(id, "guest-exec", e))?;
    let end = poll_exit(qga, pid, Instant::now() + HELPER_LIMIT)
        .await
        .map_err(|e| agent_error(id, "guest-exec-status", e))?;
    match end {
        Some(st) if st.exit_code == Some(0) => Ok(()),
        Some(st) => Err(BackendError::Precondition(format!(
            "VM {id}: `{}` in the guest failed: {}",
            argv[0],
            String::from_utf8_lossy(&st.stderr).trim()
        ))),
        None => Err(BackendError::Timeout(format!(
            "VM {id}: `{}` in the guest did not end within {HELPER_LIMIT:?}",
            argv[0]
        ))),
    }
}

/// The answer for a command that ended: output capped, truncation flagged.
pub(super) fn exec_result(pid: i64, st: ExecStatus, duration: Duration) -> GuestExecResult {
    let (stdout, out_cut) = cap_output(st.stdout, EXEC_OUTPUT_CAP);
    let (stderr, err_cut) = cap_output(st.stderr, EXEC_OUTPUT_CAP);
    GuestExecResult {
        pid,
        exited: true,
        exit_code: st.exit_code.and_then(|c| i32::try_from(c).ok()),
        signal: st.signal.and_then(|s| i32::try_from(s).ok()),
        stdout,
        stderr,
        stdout_truncated: out_cut || st.stdout_truncated,
        stderr_truncated: err_cut || st.stderr_truncated,
        timed_out: false,
        kill_sent: false,
        duration,
    }
}

/// Sorts an agent failure: no agent, or the agent refusing (its own message kept, e.g. a
/// command on its blocklist), is a precondition; silence on a command is a timeout.
pub(super) fn agent_error(id: &VmId, command: &str, e: QgaError) -> BackendError {
    match e {
        QgaError::AgentUnavailable { .. } => {
            BackendError::Precondition(format!("the guest agent of VM {id} does not answer: {e}"))
        }
        QgaError::Timeout { .. } => BackendError::Timeout(format!("VM {id}: {e}")),
        QgaError::Command { class, desc, .. } => BackendError::Precondition(format!(
            "the guest agent of VM {id} refused {command}: {desc} ({class})"
        )),
        QgaError::Io(_) | QgaError::Protocol(_) | QgaError::Decode { .. } => {
            BackendError::Internal(format!("VM {id}: {command}: {e}"))
        }
    }
}

/// The host's clock, nanoseconds since the epoch.
fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_output_is_capped_per_stream() {
        let st = ExecStatus {
            exited: true,
            exit_code: Some(3),
            stdout: vec![b'a'; EXEC_OUTPUT_CAP + 5],
            stderr: b"err".to_vec(),
            stderr_truncated: true,
            ..ExecStatus::default()
        };
        let r = exec_result(7, st, Duration::ZERO);
        assert_eq!((r.pid, r.exit_code, r.signal), (7, Some(3), None));
        assert_eq!(r.stdout.len(), EXEC_OUTPUT_CAP);
        assert!(r.stdout_truncated);
        assert!(r.stderr_truncated, "the agent's own flag is kept");
        assert!(!r.timed_out);
    }

    #[test]
    fn agent_errors_are_sorted() {
        let id = VmId::parse("0d6b5c3e-8f1a-4c2b-9e7d-1a2b3c4d5e6f").unwrap();
        let disabled = QgaError::Command {
            command: "guest-exec".into(),
            class: "CommandDisabled".into(),
            desc: "Command guest-exec has been disabled".into(),
        };
        match agent_error(&id, "guest-exec", disabled) {
            BackendError::Precondition(m) => {
                assert!(m.contains("Command guest-exec has been disabled"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let absent = QgaError::AgentUnavailable {
            path: "/x".into(),
            reason: "no".into(),
        };
        assert!(matches!(
            agent_error(&id, "guest-ping", absent),
            BackendError::Precondition(m) if m.contains("does not answer")
        ));
        let slow = QgaError::Timeout {
            command: "guest-file-read".into(),
            after: Duration::from_secs(1),
        };
        assert!(matches!(
            agent_error(&id, "guest-file-read", slow),
            BackendError::Timeout(_)
        ));
        let odd = QgaError::Protocol("bad".into());
        assert!(matches!(
            agent_error(&id, "guest-exec", odd),
            BackendError::Internal(_)
        ));
    }
}
