//! `guest-exec`: running a command in the guest and collecting its output.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::{ExecStatus, QgaClient, QgaError, decode_b64};

impl QgaClient {
    /// `guest-exec`: starts `path` with `args` in the guest, capturing its output; returns the
    /// guest pid to pass to [`QgaClient::exec_status`].
    pub async fn exec(&self, path: &str, args: &[&str]) -> Result<i64, QgaError> {
        let v = self
            .execute(
                "guest-exec",
                Some(json!({ "path": path, "arg": args, "capture-output": true })),
            )
            .await?;
        v.get("pid")
            .and_then(Value::as_i64)
            .ok_or_else(|| QgaError::Decode {
                command: "guest-exec".into(),
                problem: format!("no pid in {v}"),
            })
    }

    /// `guest-exec` with the whole request: argv, environment (`NAME=value`, replacing the
    /// guest's), standard input; output captured. Returns the guest pid.
    pub async fn exec_with(
        &self,
        path: &str,
        args: &[String],
        env: &[String],
        input: Option<&[u8]>,
    ) -> Result<i64, QgaError> {
        let v = self
            .execute("guest-exec", Some(exec_arguments(path, args, env, input)))
            .await?;
        v.get("pid")
            .and_then(Value::as_i64)
            .ok_or_else(|| QgaError::Decode {
                command: "guest-exec".into(),
                problem: format!("no pid in {v}"),
            })
    }

    /// `guest-exec-status` for a pid from [`QgaClient::exec`], output decoded.
    pub async fn exec_status(&self, pid: i64) -> Result<ExecStatus, QgaError> {
        let v = self
            .execute("guest-exec-status", Some(json!({ "pid": pid })))
            .await?;
        parse_exec_status(&v)
    }

    /// Runs a command to completion (polling [`QgaClient::exec_status`]) within `limit`.
    pub async fn exec_wait(
        &self,
        path: &str,
        args: &[&str],
        limit: Duration,
    ) -> Result<ExecStatus, QgaError> {
        let pid = self.exec(path, args).await?;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let st = self.exec_status(pid).await?;
            if st.exited {
                return Ok(st);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(QgaError::Timeout {
                    command: format!("guest-exec {path}"),
                    after: limit,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The arguments of `guest-exec`: empty lists and no input are left out.
pub(super) fn exec_arguments(
    path: &str,
    args: &[String],
    env: &[String],
    input: Option<&[u8]>,
) -> Value {
    let mut a = json!({ "path": path, "capture-output": true });
    if !args.is_empty() {
        a["arg"] = json!(args);
    }
    if !env.is_empty() {
        a["env"] = json!(env);
    }
    if let Some(input) = input {
        a["input-data"] = json!(base64::engine::general_purpose::STANDARD.encode(input));
    }
    a
}

/// Decodes a `guest-exec-status` answer (output from base64).
pub(super) fn parse_exec_status(v: &Value) -> Result<ExecStatus, QgaError> {
    const CMD: &str = "guest-exec-status";
    let exited = v
        .get("exited")
        .and_then(Value::as_bool)
        .ok_or_else(|| QgaError::Decode {
            command: CMD.into(),
            problem: format!("no exited flag in {v}"),
        })?;
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    Ok(ExecStatus {
        exited,
        exit_code: v.get("exitcode").and_then(Value::as_i64),
        signal: v.get("signal").and_then(Value::as_i64),
        stdout: decode_b64(CMD, v.get("out-data"))?,
        stderr: decode_b64(CMD, v.get("err-data"))?,
        truncated: flag("out-truncated") || flag("err-truncated"),
        stdout_truncated: flag("out-truncated"),
        stderr_truncated: flag("err-truncated"),
    })
}
