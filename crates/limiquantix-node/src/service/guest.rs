//! The guest-agent RPCs: ExecuteInGuest, ReadGuestFile, WriteGuestFile, GuestShutdown,
//! QuiesceFilesystems, ThawFilesystems, SyncTime, over the backend's guest methods (which talk
//! to the VM's one agent connection). The requests are checked here (INVALID_ARGUMENT names
//! the field); a VM that does not run, or whose agent does not answer or refuses, is
//! FAILED_PRECONDITION with the reason (the agent's own message when it refuses). Logs name
//! the VM and the command, never file contents or standard input (the backend logs each call).

use std::time::Duration;

use super::core::NodeService;
use crate::error::ApiError;
use crate::translate::parse_vm_id;
use limiquantix_proto::v1 as pb;
use limiquantix_vm::VmBackend;
use limiquantix_vm::guest_ops::{
    EXEC_DEFAULT_TIMEOUT, EXEC_INPUT_MAX, EXEC_MAX_TIMEOUT, FILE_MAX, FREEZE_DEFAULT, FREEZE_MAX,
    FreezeRequest, GuestExec, GuestExecResult, GuestFileRead, GuestFileWrite, GuestShutdownMode,
};

impl<B: VmBackend> NodeService<B> {
    /// ExecuteInGuest.
    pub(super) async fn guest_exec(
        &self,
        req: pb::ExecuteInGuestRequest,
    ) -> Result<pb::ExecuteInGuestResponse, ApiError> {
        let id = parse_vm_id("vm_id", &req.vm_id)?;
        let exec = exec_request(req)?;
        let r = self.inner.backend.guest_exec(&id, exec).await?;
        tracing::info!(vm_id = %id, command = "guest-exec", pid = r.pid, exit_code = ?r.exit_code,
            signal = ?r.signal, timed_out = r.timed_out, "guest command answered");
        Ok(exec_response(r))
    }

    /// ReadGuestFile.
    pub(super) async fn guest_read(
        &self,
        req: pb::ReadGuestFileRequest,
    ) -> Result<pb::ReadGuestFileResponse, ApiError> {
        let id = parse_vm_id("vm_id", &req.vm_id)?;
        check_path(&req.path)?;
        if req.max_size > FILE_MAX {
            return Err(ApiError::invalid(
                "max_size",
                format!("{} is more than {FILE_MAX} bytes (16 MiB)", req.max_size),
            ));
        }
        if i64::try_from(req.offset).is_err() {
            return Err(ApiError::invalid("offset", "is beyond 2^63 - 1"));
        }
        let read = GuestFileRead {
            path: req.path,
            offset: req.offset,
            max_bytes: if req.max_size == 0 {
                FILE_MAX
            } else {
                req.max_size
            },
        };
        let r = self.inner.backend.guest_read_file(&id, read).await?;
        Ok(pb::ReadGuestFileResponse {
            success: true,
            data: r.data,
            total_size: r.total_size,
            eof: r.eof,
            error: String::new(),
        })
    }

    /// WriteGuestFile.
    pub(super) async fn guest_write(
        &self,
        req: pb::WriteGuestFileRequest,
    ) -> Result<pb::WriteGuestFileResponse, ApiError> {
        let id = parse_vm_id("vm_id", &req.vm_id)?;
        check_path(&req.path)?;
        if req.data.len() as u64 > FILE_MAX {
            return Err(ApiError::invalid(
                "data",
                format!("{} bytes is more than {FILE_MAX} (16 MiB)", req.data.len()),
            ));
        }
        if req.mode > 0o7777 {
            return Err(ApiError::invalid(
                "mode",
                format!(
                    "{:o} is not a permission mode (at most 7777 octal)",
                    req.mode
                ),
            ));
        }
        let write = GuestFileWrite {
            path: req.path,
            data: req.data,
            append: req.append,
            mode: (req.mode != 0).then_some(req.mode),
            create_parents: req.create_parents,
        };
        let bytes_written = self.inner.backend.guest_write_file(&id, write).await?;
        Ok(pb::WriteGuestFileResponse {
            success: true,
            bytes_written,
            error: String::new(),
        })
    }

    /// GuestShutdown.
    pub(super) async fn shut_guest_down(
        &self,
        req: pb::GuestShutdownRequest,
    ) -> Result<pb::GuestShutdownResponse, ApiError> {
        let id = parse_vm_id("vm_id", &req.vm_id)?;
        if req.delay_seconds != 0 {
            return Err(ApiError::invalid(
                "delay_seconds",
                "a delay is not supported by the guest agent: leave it 0",
            ));
        }
        let mode = match (req.halt, req.reboot) {
            (true, _) => GuestShutdownMode::Halt,
            (false, true) => GuestShutdownMode::Reboot,
            (false, false) => GuestShutdownMode::Poweroff,
        };
        self.inner.backend.guest_shutdown(&id, mode).await?;
        Ok(pb::GuestShutdownResponse {
            accepted: true,
            error: String::new(),
        })
    }

    /// QuiesceFilesystems.
    pub(super) async fn guest_freeze(
        &self,
        req: pb::QuiesceFilesystemsRequest,
    ) -> Result<pb::QuiesceFilesystemsResponse, ApiError> {
        let id = parse_vm_id("vm_id", &req.vm_id)?;
        let auto_thaw = bounded_seconds(
            "timeout_seconds",
            req.timeout_seconds,
            FREEZE_DEFAULT,
            FREEZE_MAX,
        )?;
        if let Some(i) = req.mount_points.iter().position(String::is_empty) {
            return Err(ApiError::invalid(format!("mount_points[{i}]"), "is empty"));
        }
        let request = FreezeRequest {
            mount_points: req.mount_points.clone(),
            auto_thaw,
        };
        let r = self.inner.backend.guest_fsfreeze(&id, request).await?;
        Ok(pb::QuiesceFilesystemsResponse {
            success: true,
            frozen: req
                .mount_points
                .into_iter()
                .map(|mount_point| pb::FrozenFilesystem {
                    mount_point,
                    frozen: true,
                    ..Default::default()
                })
                .collect(),
            error: String::new(),
            quiesce_token: r.token,
            frozen_count: r.frozen,
        })
    }

    /// ThawFilesystems (the token and mount points are not needed: every frozen filesystem of
    /// the guest is thawed).
    pub(super) async fn guest_thaw(
        &self,
        req: pb::ThawFilesystemsRequest,
    ) -> Result<pb::ThawFilesystemsResponse, ApiError> {
        let id = parse_vm_id("vm_id", &req.vm_id)?;
        let r = self.inner.backend.guest_fsthaw(&id).await?;
        Ok(pb::ThawFilesystemsResponse {
            success: true,
            thawed_mount_points: req.mount_points,
            error: String::new(),
            frozen_duration_ms: r.frozen_for.map_or(0, |d| d.as_millis() as u64),
            thawed_count: r.thawed,
        })
    }

    /// SyncTime.
    pub(super) async fn guest_sync_time(
        &self,
        req: pb::SyncTimeRequest,
    ) -> Result<pb::SyncTimeResponse, ApiError> {
        let id = parse_vm_id("vm_id", &req.vm_id)?;
        if req.time_unix_ns < 0 {
            return Err(ApiError::invalid("time_unix_ns", "is before 1970"));
        }
        let given = (req.time_unix_ns != 0).then_some(req.time_unix_ns);
        let r = self.inner.backend.guest_set_time(&id, given).await?;
        Ok(pb::SyncTimeResponse {
            success: true,
            offset_seconds: r.offset_ns.map_or(0.0, |ns| ns as f64 / 1e9),
            time_source: if given.is_some() { "request" } else { "host" }.into(),
            error: r.warning.unwrap_or_default(),
        })
    }
}

/// The backend request of an ExecuteInGuest request, its fields checked.
fn exec_request(req: pb::ExecuteInGuestRequest) -> Result<GuestExec, ApiError> {
    if req.command.is_empty() {
        return Err(ApiError::invalid("command", "is empty: name the program"));
    }
    if !req.working_directory.is_empty() {
        return Err(ApiError::invalid(
            "working_directory",
            "is not supported by the guest agent: run `/bin/sh -c 'cd DIR && ...'` instead",
        ));
    }
    if req.input_data.len() > EXEC_INPUT_MAX {
        return Err(ApiError::invalid(
            "input_data",
            format!(
                "{} bytes is more than {EXEC_INPUT_MAX} (1 MiB)",
                req.input_data.len()
            ),
        ));
    }
    if let Some(k) = req
        .environment
        .keys()
        .find(|k| k.is_empty() || k.contains('='))
    {
        return Err(ApiError::invalid(
            "environment",
            format!("{k:?} is not a variable name"),
        ));
    }
    let timeout = bounded_seconds(
        "timeout_seconds",
        req.timeout_seconds,
        EXEC_DEFAULT_TIMEOUT,
        EXEC_MAX_TIMEOUT,
    )?;
    Ok(GuestExec {
        path: req.command,
        args: req.args,
        env: req.environment.into_iter().collect(),
        input: (!req.input_data.is_empty()).then_some(req.input_data),
        wait: req.wait_for_exit,
        timeout,
    })
}

/// The wire answer of a command: `success` when it exited with status 0.
fn exec_response(r: GuestExecResult) -> pb::ExecuteInGuestResponse {
    let error = if r.timed_out {
        format!(
            "timed out after {} s{}",
            r.duration.as_secs(),
            if r.kill_sent {
                " (SIGKILL sent)"
            } else {
                " (it may still run in the guest)"
            }
        )
    } else if let Some(s) = r.signal {
        format!("killed by signal {s}")
    } else if let Some(c) = r.exit_code.filter(|&c| c != 0) {
        format!("exited with status {c}")
    } else {
        String::new()
    };
    pb::ExecuteInGuestResponse {
        success: error.is_empty(),
        exit_code: r.exit_code.unwrap_or(if r.exited { 0 } else { -1 }),
        stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
        timed_out: r.timed_out,
        duration_ms: r.duration.as_millis() as u64,
        error,
        signal: r.signal.unwrap_or(0),
        stdout_truncated: r.stdout_truncated,
        stderr_truncated: r.stderr_truncated,
        pid: r.pid,
    }
}

/// `0` means `default`; more than `max` is INVALID_ARGUMENT naming `field`.
fn bounded_seconds(
    field: &str,
    seconds: u32,
    default: Duration,
    max: Duration,
) -> Result<Duration, ApiError> {
    match u64::from(seconds) {
        0 => Ok(default),
        s if s > max.as_secs() => Err(ApiError::invalid(
            field,
            format!("{s} is more than {} seconds", max.as_secs()),
        )),
        s => Ok(Duration::from_secs(s)),
    }
}

/// A guest path is passed to the agent verbatim; it only has to be there.
fn check_path(path: &str) -> Result<(), ApiError> {
    if path.is_empty() {
        return Err(ApiError::invalid(
            "path",
            "is empty: name a file in the guest",
        ));
    }
    if path.contains('\0') {
        return Err(ApiError::invalid("path", "contains a NUL byte"));
    }
    Ok(())
}
