//! GetOVSStatus and the network-port RPCs (ConfigureNetworkPort, DeleteNetworkPort,
//! GetNetworkPortStatus, ListNetworkPorts): the control plane's Open vSwitch / OVN API.
//!
//! This node does not bind VM ports to OVS yet (VM NICs use user-mode networking or a Linux
//! bridge). Every one of these RPCs answers FAILED_PRECONDITION naming what is missing: Open
//! vSwitch itself when `ovs-vsctl` is not installed, otherwise the port binding. GetOVSStatus
//! reports what `ovs-vsctl` says when it is installed.

use super::core::NodeService;
use crate::error::ApiError;
use limiquantix_proto::v1 as pb;
use limiquantix_vm::VmBackend;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// The Open vSwitch command-line tool, looked up on `PATH`.
pub(super) const OVS_VSCTL: &str = "ovs-vsctl";

/// The answer when `ovs-vsctl` cannot be found.
const NOT_INSTALLED: &str = "Open vSwitch is not installed on this node (ovs-vsctl not found)";

/// Longest wait for one `ovs-vsctl` run.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl<B: VmBackend> NodeService<B> {
    /// GetOVSStatus: the installed Open vSwitch's version and whether its database answers.
    pub(super) async fn ovs_status(&self) -> Result<pb::OvsStatusResponse, ApiError> {
        ovs_status(&self.inner.ovs_vsctl).await
    }

    /// A network-port RPC: refused with what this node lacks (there is no success to return).
    pub(super) async fn network_port<T>(&self, method: &'static str) -> Result<T, ApiError> {
        ovs_version(&self.inner.ovs_vsctl).await?;
        tracing::debug!(
            method,
            "network-port RPC refused: port binding is not implemented"
        );
        Err(ApiError::Precondition(format!(
            "{method} is not supported by this node yet: it does not bind VM ports to Open \
             vSwitch/OVN (VM NICs use user-mode networking or a Linux bridge)"
        )))
    }
}

/// What GetOVSStatus reports from `vsctl`.
pub(super) async fn ovs_status(vsctl: &Path) -> Result<pb::OvsStatusResponse, ApiError> {
    let version = ovs_version(vsctl).await?;
    // `show` needs ovsdb-server; `--timeout` keeps a dead database from hanging the call.
    let available = run(vsctl, &["--timeout=2", "show"])
        .await
        .is_ok_and(|o| o.status.success());
    Ok(pb::OvsStatusResponse {
        available,
        ovs_version: version,
        ..Default::default()
    })
}

/// The version `vsctl --version` prints, or FAILED_PRECONDITION saying why there is none.
async fn ovs_version(vsctl: &Path) -> Result<String, ApiError> {
    let unusable = |why: String| {
        ApiError::Precondition(format!(
            "Open vSwitch cannot be used on this node: {} {why}",
            vsctl.display()
        ))
    };
    match run(vsctl, &["--version"]).await {
        Ok(out) if out.status.success() => Ok(parse_version(&String::from_utf8_lossy(&out.stdout))),
        Ok(out) => Err(unusable(format!(
            "--version failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ApiError::Precondition(NOT_INSTALLED.to_owned()))
        }
        Err(e) => Err(unusable(format!("does not run: {e}"))),
    }
}

/// Runs `vsctl` with `args`, killed after [`PROBE_TIMEOUT`].
async fn run(vsctl: &Path, args: &[&str]) -> std::io::Result<Output> {
    let child = tokio::process::Command::new(vsctl)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(PROBE_TIMEOUT, child)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {PROBE_TIMEOUT:?}"),
            ))
        })
}

/// The version from `ovs-vsctl --version`'s first line, e.g. `ovs-vsctl (Open vSwitch) 3.1.0`.
fn parse_version(stdout: &str) -> String {
    let first = stdout.lines().next().unwrap_or_default().trim();
    first.rsplit(' ').next().unwrap_or(first).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;
    use tonic::Code;

    fn script(dir: &Path, body: &str) -> std::path::PathBuf {
        let p = dir.join("ovs-vsctl");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Another test thread forking while the file was open for writing makes exec fail
        // with ETXTBSY for a moment.
        for _ in 0..100 {
            match std::process::Command::new(&p).output() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                _ => break,
            }
        }
        p
    }

    #[tokio::test]
    async fn a_missing_ovs_vsctl_is_a_failed_precondition() {
        let dir = tempfile::tempdir().unwrap();
        let e = ovs_status(&dir.path().join("ovs-vsctl")).await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert_eq!(e.to_string(), NOT_INSTALLED);
        let e = ovs_status(Path::new("lq-no-such-ovs-vsctl"))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), NOT_INSTALLED);
    }

    #[tokio::test]
    async fn an_installed_ovs_reports_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let vsctl = script(
            dir.path(),
            r#"case "$1" in
--version) echo "ovs-vsctl (Open vSwitch) 3.1.0"; echo "DB Schema 8.3.1";;
*) echo "database connection failed" >&2; exit 1;;
esac"#,
        );
        let s = ovs_status(&vsctl).await.unwrap();
        assert_eq!(s.ovs_version, "3.1.0");
        assert!(!s.available, "the database does not answer");

        let broken = script(dir.path(), "exit 3");
        let e = ovs_status(&broken).await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert!(e.to_string().contains("--version failed"), "{e}");
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("ovs-vsctl (Open vSwitch) 2.17.9\n"), "2.17.9");
        assert_eq!(parse_version("3.0\n"), "3.0");
        assert_eq!(parse_version(""), "");
    }
}
