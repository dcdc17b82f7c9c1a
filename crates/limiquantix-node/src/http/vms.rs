//! The VM tabs the control plane proxies to the browser (`/api/v1/vms/{id}/…`), each a thin
//! adapter over the gRPC service's own handler: logs (GetVMLogs: QEMU's log and the serial
//! console), `qemu-agent/ping` (PingAgent), `execute` (ExecuteInGuest: `/bin/sh -c COMMAND`
//! in the guest, or `command` + `args` as argv; output capped at 1 MiB each), `agent/files/list`
//! (a bounded guest command: GNU `find PATH -mindepth 1 -maxdepth 1 -printf …` through the
//! agent's exec, at most [`MAX_ENTRIES`] entries, 15 s) and `agent/files/read` (ReadGuestFile,
//! at most [`READ_MAX`] bytes). An unknown VM is 404, a VM whose agent does not answer 409 with
//! the reason; file contents, commands' output and paths are never logged here.

use super::reply;
use super::state::Shared;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use limiquantix_proto::v1 as pb;
use limiquantix_proto::v1::node_daemon_service_server::NodeDaemonService;
use limiquantix_vm::VmBackend;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use tonic::{Code, Request};

/// Most entries a listing returns.
pub const MAX_ENTRIES: usize = 1000;
/// Most bytes a file read returns.
pub const READ_MAX: u64 = 1 << 20;
/// Longest a listing may take in the guest.
const LIST_TIMEOUT_SECS: u32 = 15;
/// Longest guest path accepted.
const PATH_MAX: usize = 4096;

/// `GET /api/v1/vms/{id}/logs?lines=N`.
pub async fn logs<B: VmBackend>(
    State(s): State<Arc<Shared<B>>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let lines = match q.get("lines").map(|l| l.parse::<u32>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return reply::error(Code::InvalidArgument, "lines: not a non-negative integer");
        }
    };
    let req = pb::GetVmLogsRequest { vm_id: id, lines };
    match s.service.get_vm_logs(Request::new(req)).await {
        Ok(r) => {
            let r = r.into_inner();
            reply::ok(serde_json::json!({
                "vmId": r.vm_id, "vmName": r.vm_name, "qemuLog": r.qemu_log,
                "logPath": r.log_path, "logSizeBytes": r.log_size_bytes,
                "linesReturned": r.lines_returned, "truncated": r.truncated,
                "lastModified": r.last_modified, "serialLog": r.serial_log,
                "serialLogPath": r.serial_log_path,
                "serialLinesReturned": r.serial_lines_returned,
                "serialTruncated": r.serial_truncated,
            }))
        }
        Err(e) => reply::status(&e),
    }
}

/// `GET /api/v1/vms/{id}/qemu-agent/ping`: `{available, version?, error?}`.
pub async fn agent_ping<B: VmBackend>(
    State(s): State<Arc<Shared<B>>>,
    Path(id): Path<String>,
) -> Response {
    let req = pb::VmIdRequest { vm_id: id };
    match s.service.ping_agent(Request::new(req)).await {
        Ok(r) => {
            let r = r.into_inner();
            let mut body = serde_json::json!({ "available": r.connected });
            if !r.version.is_empty() {
                body["version"] = r.version.into();
            }
            if !r.error.is_empty() {
                body["error"] = r.error.into();
            }
            reply::ok(body)
        }
        Err(e) if matches!(e.code(), Code::NotFound | Code::InvalidArgument) => reply::status(&e),
        Err(e) => reply::ok(serde_json::json!({ "available": false, "error": e.message() })),
    }
}

/// The execute request as the control plane passes it on (the UI's body; other fields are
/// ignored, as the Go services do).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteBody {
    /// A shell command line (run by `/bin/sh -c`), or the program when `args` is given.
    pub command: String,
    /// Arguments: when present, `command` is run directly with them (no shell).
    #[serde(default)]
    pub args: Option<Vec<String>>,
    /// Seconds to wait (default 30, at most 300).
    #[serde(default)]
    pub timeout_seconds: Option<u32>,
    /// Must be true (or absent): the node always waits for the command.
    #[serde(default)]
    pub wait_for_exit: Option<bool>,
}

/// `POST /api/v1/vms/{id}/execute`.
pub async fn execute<B: VmBackend>(
    State(s): State<Arc<Shared<B>>>,
    Path(id): Path<String>,
    body: Result<Json<ExecuteBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(b) = match body {
        Ok(b) => b,
        Err(e) => return reply::error(Code::InvalidArgument, format!("body: {}", e.body_text())),
    };
    if b.wait_for_exit == Some(false) {
        return reply::error(
            Code::InvalidArgument,
            "waitForExit: false is not supported: this node always waits for the command",
        );
    }
    if b.command.trim().is_empty() {
        return reply::error(Code::InvalidArgument, "command: is empty");
    }
    let (command, args) = match b.args {
        Some(args) => (b.command, args),
        None => ("/bin/sh".to_string(), vec!["-c".to_string(), b.command]),
    };
    let req = pb::ExecuteInGuestRequest {
        vm_id: id,
        command,
        args,
        timeout_seconds: b.timeout_seconds.unwrap_or(0),
        wait_for_exit: true,
        ..Default::default()
    };
    match s.service.execute_in_guest(Request::new(req)).await {
        Ok(r) => {
            let r = r.into_inner();
            let mut body = serde_json::json!({
                "success": r.exit_code == 0 && !r.timed_out && r.signal == 0,
                "exitCode": r.exit_code, "stdout": r.stdout, "stderr": r.stderr,
                "timedOut": r.timed_out, "durationMs": r.duration_ms,
                "stdoutTruncated": r.stdout_truncated, "stderrTruncated": r.stderr_truncated,
            });
            if r.timed_out {
                body["error"] = "the command did not finish in time and was killed".into();
            }
            reply::ok(body)
        }
        Err(e) => reply::status(&e),
    }
}

/// A guest path from the query: absolute, no NUL, bounded.
fn guest_path(q: &HashMap<String, String>) -> Result<String, Box<Response>> {
    let Some(p) = q.get("path").filter(|p| !p.is_empty()) else {
        return Err(Box::new(reply::error(
            Code::InvalidArgument,
            "path: missing (an absolute guest path)",
        )));
    };
    if !p.starts_with('/') || p.contains('\0') || p.len() > PATH_MAX {
        return Err(Box::new(reply::error(
            Code::InvalidArgument,
            format!("path: must be an absolute guest path of at most {PATH_MAX} bytes without NUL"),
        )));
    }
    Ok(p.clone())
}

/// `GET /api/v1/vms/{id}/agent/files/list?path=&include_hidden=`.
pub async fn files_list<B: VmBackend>(
    State(s): State<Arc<Shared<B>>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = match guest_path(&q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let hidden = q
        .get("include_hidden")
        .is_some_and(|v| v == "true" || v == "1");
    let req = pb::ExecuteInGuestRequest {
        vm_id: id,
        command: "find".into(),
        args: [
            &path,
            "-mindepth",
            "1",
            "-maxdepth",
            "1",
            "-printf",
            super::listing::FORMAT,
        ]
        .map(String::from)
        .to_vec(),
        timeout_seconds: LIST_TIMEOUT_SECS,
        wait_for_exit: true,
        ..Default::default()
    };
    let r = match s.service.execute_in_guest(Request::new(req)).await {
        Ok(r) => r.into_inner(),
        Err(e) => return reply::status(&e),
    };
    if r.exit_code != 0 || r.timed_out {
        let why = if r.timed_out {
            "timed out".to_string()
        } else {
            r.stderr.trim().to_string()
        };
        return reply::ok(serde_json::json!({
            "success": false, "path": path, "entries": [],
            "error": format!("cannot list {path}: {why}"),
        }));
    }
    let (entries, truncated) = super::listing::parse(&r.stdout, &path, hidden, MAX_ENTRIES);
    reply::ok(serde_json::json!({
        "success": true, "path": path, "entries": entries,
        "truncated": truncated || r.stdout_truncated,
    }))
}

/// `GET /api/v1/vms/{id}/agent/files/read?path=`.
pub async fn files_read<B: VmBackend>(
    State(s): State<Arc<Shared<B>>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = match guest_path(&q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let req = pb::ReadGuestFileRequest {
        vm_id: id,
        path: path.clone(),
        offset: 0,
        max_size: READ_MAX,
    };
    match s.service.read_guest_file(Request::new(req)).await {
        Ok(r) => {
            let r = r.into_inner();
            let binary = std::str::from_utf8(&r.data).is_err();
            reply::ok(serde_json::json!({
                "success": true, "path": path,
                "content": String::from_utf8_lossy(&r.data),
                "sizeBytes": r.total_size, "truncated": !r.eof, "binary": binary,
            }))
        }
        Err(e) => reply::status(&e),
    }
}
