//! Storage migration: the disks the backend created in the VM's own directory are copied to
//! the target. The target creates them empty (overlays on the same backing image, found there
//! by the daemon) and serves them over NBD (`nbd-server-start`, `block-export-add`, or
//! `nbd-server-add` on an older QEMU); the source mirrors each into its export
//! (`blockdev-add` of an NBD node, `blockdev-mirror` with `sync: top`), waits until every
//! mirror is ready, and ends them (`block-job-cancel`: a consistent copy) while the guest is
//! stopped at switchover, before the target resumes it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::tls::{CREDS_ID, host_port};
use crate::argv::top_node;
use crate::backend::core::{QemuBackend, Result};
use crate::backend::types::QemuError;
use crate::backend::vm::Vm;
use crate::paths::RuntimePaths;
use limiquantix_vm::BackendError;
use limiquantix_vm::migration::{MigrationPhase, MigrationProgress, MigrationTls, ProgressSender};
use limiquantix_vm::model::{DiskSource, VmDefinition};

/// How often mirror jobs are looked at.
const POLL: Duration = Duration::from_millis(200);
/// How long ending the mirrors may take while the guest is stopped.
const CANCEL_WAIT: Duration = Duration::from_secs(60);

fn refused(msg: String) -> QemuError {
    QemuError::Refused(BackendError::Precondition(msg))
}

/// The disks of `def` the target must create and receive: those missing here that the backend
/// creates in the VM's own directory (with `copy_local`); any other missing disk is a refusal
/// (blocking).
pub(super) fn local_disks(
    def: &VmDefinition,
    paths: &RuntimePaths,
    copy_local: bool,
) -> Result<Vec<usize>> {
    let mut local = Vec::new();
    for (i, d) in def.disks.iter().enumerate() {
        let Some(file) = paths.disk_of(def, i) else {
            continue;
        };
        if file.is_file() {
            continue;
        }
        let own = paths
            .created_disk(def, i)
            .is_some_and(|f| f.starts_with(&paths.vm_dir));
        if copy_local && own {
            local.push(i);
            continue;
        }
        return Err(refused(format!(
            "disks[{i}] ({}): {} is not reachable on this node; a live migration without storage \
             copy needs every disk in a pool with the same id and directory on both nodes{}",
            d.id,
            file.display(),
            if own {
                ""
            } else {
                " (only disks the node created in the VM's directory are copied)"
            }
        )));
    }
    Ok(local)
}

/// Creates the local disks `local` of `def` under the staging layout `staged`, empty.
pub(super) async fn create_local(
    qemu_img: &Path,
    def: &VmDefinition,
    staged: &RuntimePaths,
    local: &[usize],
) -> Result<()> {
    for &i in local {
        let d = &def.disks[i];
        let Some(file) = staged.created_disk(def, i) else {
            continue;
        };
        match &d.source {
            DiskSource::Overlay {
                backing,
                size_bytes,
            } => {
                limiquantix_storage::create_overlay(qemu_img, backing, &file, *size_bytes).await?;
            }
            DiskSource::Blank { size_bytes } => {
                limiquantix_storage::create_blank(qemu_img, &file, d.format, *size_bytes).await?
            }
            DiskSource::Path { .. } => {}
        }
    }
    Ok(())
}

/// The source's NBD client arguments for the target's `server` (a socket path, or
/// `tcp:HOST:PORT` with TLS): the `server` object and the TLS members.
fn nbd_address(server: &str, tls: Option<&MigrationTls>) -> Result<(Value, Value)> {
    let Some(addr) = server.strip_prefix("tcp:") else {
        return Ok((json!({ "type": "unix", "path": server }), json!({})));
    };
    let addr: SocketAddr = addr.parse().map_err(|_| {
        refused(format!(
            "the target's disk server {server:?} is not tcp:IP:PORT"
        ))
    })?;
    let Some(tls) = tls else {
        return Err(refused(format!(
            "the target's disk server {server} is on the network: the migration needs TLS"
        )));
    };
    let server =
        json!({ "type": "inet", "host": addr.ip().to_string(), "port": addr.port().to_string() });
    let mut extra = json!({ "tls-creds": CREDS_ID });
    if let Some(name) = &tls.peer_name {
        extra["tls-hostname"] = json!(name);
    }
    Ok((server, extra))
}

/// The NBD socket of an incoming VM.
pub(super) fn nbd_socket(paths: &RuntimePaths) -> PathBuf {
    paths.run_dir.join("nbd.sock")
}

impl QemuBackend {
    /// Target: serves the disks `ids` (writable) over NBD, on a Unix socket or, with `tcp`, on
    /// that address with the migration's TLS credentials; returns the server's address (the
    /// socket path, or `tcp:HOST:PORT`).
    pub(super) async fn export_disks(
        &self,
        vm: &Vm,
        ids: &[String],
        tcp: Option<(IpAddr, u16)>,
    ) -> Result<String> {
        let (server, start) = match tcp {
            None => {
                let socket = nbd_socket(&vm.paths).display().to_string();
                let addr = json!({ "type": "unix", "data": { "path": socket } });
                (socket, json!({ "addr": addr }))
            }
            Some((ip, port)) => {
                let host = ip.to_string();
                let addr =
                    json!({ "type": "inet", "data": { "host": host, "port": port.to_string() } });
                let server = format!("tcp:{}", host_port(ip, port));
                (server, json!({ "addr": addr, "tls-creds": CREDS_ID }))
            }
        };
        self.qmp_call(vm, "nbd-server-start", Some(start)).await?;
        for id in ids {
            let node = format!("{id}-fmt");
            let export = json!({
                "type": "nbd", "id": format!("mig-{id}"), "node-name": node,
                "name": id, "writable": true,
            });
            if self
                .qmp_call(vm, "block-export-add", Some(export))
                .await
                .is_err()
            {
                let old = json!({ "device": node, "name": id, "writable": true });
                self.qmp_call(vm, "nbd-server-add", Some(old)).await?;
            }
        }
        Ok(server)
    }

    /// Source: mirrors each disk into the target's export and waits until all are ready,
    /// reporting the bytes copied.
    pub(super) async fn mirror_disks(
        &self,
        vm: &Vm,
        server: &str,
        ids: &[String],
        tls: Option<&MigrationTls>,
        progress: &ProgressSender,
    ) -> Result<()> {
        let def = vm.cell().def.clone();
        let address = nbd_address(server, tls)?;
        for id in ids {
            let Some(d) = def.disks.iter().find(|d| &d.id == id) else {
                return Err(refused(format!("VM {}: no disk {id:?} to copy", vm.id)));
            };
            let node = format!("mig-{id}");
            let mut nbd = json!({
                "driver": "nbd", "node-name": node, "server": address.0, "export": id,
            });
            if let Some(extra) = address.1.as_object() {
                nbd.as_object_mut()
                    .expect("an object")
                    .extend(extra.clone());
            }
            self.qmp_call(vm, "blockdev-add", Some(nbd)).await?;
            let mirror = json!({
                "job-id": node, "device": top_node(id, d.limits.as_ref()),
                "target": node, "sync": "top",
            });
            self.qmp_call(vm, "blockdev-mirror", Some(mirror)).await?;
        }
        self.wait_mirrors_ready(vm, ids.len(), progress).await
    }

    async fn block_jobs(&self, vm: &Vm) -> Result<Vec<Value>> {
        let q = self.qmp_of(vm).await?;
        let jobs = q
            .execute("query-block-jobs", None)
            .await
            .map_err(|source| QemuError::Qmp {
                vm_id: vm.id.clone(),
                source,
            })?;
        Ok(jobs
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|j| j["device"].as_str().is_some_and(|d| d.starts_with("mig-")))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn wait_mirrors_ready(
        &self,
        vm: &Vm,
        count: usize,
        progress: &ProgressSender,
    ) -> Result<()> {
        loop {
            if progress.is_closed() {
                return Err(refused(format!(
                    "the migration of VM {} was cancelled",
                    vm.id
                )));
            }
            let jobs = self.block_jobs(vm).await?;
            if jobs.len() < count {
                return Err(refused(format!(
                    "VM {}: a disk copy to the target ended early",
                    vm.id
                )));
            }
            let sum = |k: &str| jobs.iter().filter_map(|j| j[k].as_u64()).sum::<u64>();
            let (done, total) = (sum("offset"), sum("len"));
            let _ = progress.send(MigrationProgress {
                phase: MigrationPhase::Transferring,
                transferred_bytes: done,
                remaining_bytes: total.saturating_sub(done),
                total_bytes: total,
                downtime_ms: None,
            });
            if jobs.iter().all(|j| j["ready"].as_bool() == Some(true)) {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Source: ends the mirrors (`block-job-cancel` of a ready mirror leaves a consistent copy)
    /// and removes the NBD nodes. With `checked`, a mirror that does not end in time is an error.
    pub(super) async fn end_mirrors(&self, vm: &Vm, ids: &[String], checked: bool) -> Result<()> {
        for id in ids {
            let job = json!({ "device": format!("mig-{id}") });
            let _ = self.qmp_call(vm, "block-job-cancel", Some(job)).await;
        }
        let deadline = Instant::now() + CANCEL_WAIT;
        while !self.block_jobs(vm).await?.is_empty() {
            if Instant::now() >= deadline {
                if checked {
                    return Err(refused(format!(
                        "VM {}: the disk copies did not end",
                        vm.id
                    )));
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for id in ids {
            let node = json!({ "node-name": format!("mig-{id}") });
            let _ = self.qmp_call(vm, "blockdev-del", Some(node)).await;
        }
        Ok(())
    }
}
