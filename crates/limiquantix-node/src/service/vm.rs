//! The lifecycle verbs, status, list, console, logs and media of existing VMs.

use super::core::NodeService;
use crate::error::ApiError;
use crate::translate::{parse_vm_id, resource_usage, status_response};
use limiquantix_proto::v1 as pb;
use limiquantix_vm::model::VmId;
use limiquantix_vm::{BackendError, VmBackend, VmEventKind, VmOp};
use std::time::Duration;

/// GetVMLogs' default and largest line counts.
const DEFAULT_LOG_LINES: u32 = 100;
const MAX_LOG_LINES: u32 = 1000;
/// Most bytes read from the end of one log.
const MAX_LOG_BYTES: u64 = 1 << 20;

impl<B: VmBackend> NodeService<B> {
    /// Performs lifecycle operation `op` (start, stop, force_stop, reboot, pause, resume,
    /// delete); `stop_timeout_secs` is StopVM's timeout (0: the configured default).
    pub(super) async fn lifecycle(
        &self,
        vm_id: &str,
        op: VmOp,
        stop_timeout_secs: u32,
    ) -> Result<(), ApiError> {
        let id = parse_vm_id("vm_id", vm_id)?;
        let backend = &self.inner.backend;
        tracing::info!(vm_id = %id, op = %op, "VM operation requested");
        let result = match op {
            VmOp::Start => backend.start(&id).await,
            VmOp::Stop => {
                let timeout = match stop_timeout_secs {
                    0 => self.inner.config.stop_timeout,
                    secs => Duration::from_secs(secs.into()),
                };
                backend.stop(&id, timeout).await
            }
            VmOp::ForceStop => backend.force_stop(&id).await,
            VmOp::Reboot => backend.reboot(&id).await,
            VmOp::Pause => backend.pause(&id).await,
            VmOp::Resume => backend.resume(&id).await,
            VmOp::Delete => self.delete_even_running(&id).await,
            VmOp::ChangeMedia => Err(BackendError::Invalid(
                "change_media takes a CD-ROM and a medium: use ChangeMedia".into(),
            )),
            VmOp::ResizeDisk => Err(BackendError::Invalid(
                "resize_disk takes a disk and a size: use ResizeVolume".into(),
            )),
            VmOp::Snapshot | VmOp::RevertSnapshot | VmOp::DeleteSnapshot => Err(
                BackendError::Invalid(format!("{op} has its own RPCs (CreateSnapshot, ...)")),
            ),
            VmOp::AttachDisk | VmOp::DetachDisk | VmOp::AttachNic | VmOp::DetachNic => Err(
                BackendError::Invalid(format!("{op} takes a device: use its own RPC")),
            ),
            VmOp::Migrate => Err(BackendError::Invalid(
                "migrate takes a target node: use MigrateVM".into(),
            )),
        };
        match &result {
            Ok(()) => tracing::info!(vm_id = %id, op = %op, "VM operation done"),
            Err(e) => tracing::warn!(vm_id = %id, op = %op, error = %e, "VM operation failed"),
        }
        result?;
        if op == VmOp::Delete {
            self.emit(&id, VmEventKind::Deleted, "VM deleted".into());
        }
        Ok(())
    }

    /// Deletes a VM; a running one is forced off first. The LimiQuantix control plane's forced
    /// delete sends a plain DeleteVM for a running VM and forgets the VM whatever the answer,
    /// so refusing would leave a guest running that nobody manages.
    async fn delete_even_running(&self, id: &VmId) -> Result<(), BackendError> {
        let backend = &self.inner.backend;
        let state = backend.get(id).await?.status.state;
        if state.is_active() {
            tracing::warn!(vm_id = %id, state = %state, "DeleteVM of a VM that runs: forcing it off first");
            match backend.force_stop(id).await {
                // It ended on its own meanwhile.
                Ok(()) | Err(BackendError::InvalidTransition { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        backend.delete(id).await
    }

    /// The wire status; `wait_for_agent`: see [`NodeService::guest_agent`].
    async fn wire_status(
        &self,
        entry: &limiquantix_vm::VmEntry,
        wait_for_agent: bool,
    ) -> pb::VmStatusResponse {
        let mut status = status_response(entry);
        let usage = self.inner.backend.usage();
        let def = &entry.definition;
        status.resource_usage = Some(resource_usage(def, usage.get(&def.id)));
        status.guest_agent = self.guest_agent(entry, wait_for_agent).await;
        status
    }

    pub(super) async fn status(&self, vm_id: &str) -> Result<pb::VmStatusResponse, ApiError> {
        let id = parse_vm_id("vm_id", vm_id)?;
        let entry = self.inner.backend.get(&id).await?;
        Ok(self.wire_status(&entry, true).await)
    }

    pub(super) async fn list(&self) -> Result<pb::ListVMsOnNodeResponse, ApiError> {
        let entries = self.inner.backend.list().await?;
        let mut vms = Vec::with_capacity(entries.len());
        for e in &entries {
            vms.push(self.wire_status(e, false).await);
        }
        Ok(pb::ListVMsOnNodeResponse { vms })
    }

    pub(super) async fn console(&self, vm_id: &str) -> Result<pb::ConsoleInfoResponse, ApiError> {
        let id = parse_vm_id("vm_id", vm_id)?;
        let entry = self.inner.backend.get(&id).await?;
        let Some(vnc) = self.inner.backend.vnc(&id).await? else {
            return Err(BackendError::Precondition(format!(
                "VM {id} has no VNC display now: it is not running, or its console has VNC disabled"
            ))
            .into());
        };
        // A display on every address is reached at the management address (a client cannot
        // dial 0.0.0.0).
        let host = match vnc.host.parse::<std::net::IpAddr>() {
            Ok(ip) if ip.is_unspecified() => self
                .inner
                .management_address()
                .map_or(vnc.host, |a| a.to_string()),
            _ => vnc.host,
        };
        Ok(pb::ConsoleInfoResponse {
            r#type: "vnc".into(),
            host,
            port: vnc.port.into(),
            password: entry
                .definition
                .console
                .vnc_password
                .clone()
                .unwrap_or_default(),
            websocket_path: String::new(),
        })
    }

    pub(super) async fn agent_ping(&self, vm_id: &str) -> Result<pb::AgentPingResponse, ApiError> {
        let id = parse_vm_id("vm_id", vm_id)?;
        let ping = self.inner.backend.ping_agent(&id).await?;
        Ok(pb::AgentPingResponse {
            connected: ping.connected,
            version: ping.version,
            uptime_seconds: 0,
            error: ping.error,
        })
    }

    pub(super) async fn logs(
        &self,
        req: pb::GetVmLogsRequest,
    ) -> Result<pb::GetVmLogsResponse, ApiError> {
        let id: VmId = parse_vm_id("vm_id", &req.vm_id)?;
        let entry = self.inner.backend.get(&id).await?;
        let lines = match req.lines {
            0 => DEFAULT_LOG_LINES,
            n => n.min(MAX_LOG_LINES),
        } as usize;
        let logs = self.inner.backend.logs(&id, lines, MAX_LOG_BYTES).await?;
        let (q, s) = (logs.hypervisor, logs.serial);
        Ok(pb::GetVmLogsResponse {
            vm_id: id.as_str().to_string(),
            vm_name: entry.definition.name,
            qemu_log: q.text,
            log_path: q.path.display().to_string(),
            log_size_bytes: q.size,
            lines_returned: q.lines,
            truncated: q.truncated,
            last_modified: q.modified.map(rfc3339).unwrap_or_default(),
            serial_log: s.text,
            serial_log_path: s.path.display().to_string(),
            serial_lines_returned: s.lines,
            serial_truncated: s.truncated,
        })
    }
}

/// RFC 3339 (UTC, whole seconds) of a time.
pub(crate) fn rfc3339(t: std::time::SystemTime) -> String {
    let mut ts = prost_types::Timestamp::from(t);
    ts.nanos = 0;
    ts.to_string()
}

#[cfg(test)]
mod tests {
    use super::rfc3339;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_000_000)),
            "2026-11-18T11:06:40Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }
}
