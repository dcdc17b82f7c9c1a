//! Snapshots of a running QEMU over QMP: the `snapshot-save`/`-load`/`-delete` jobs (QEMU ≥ 6.0,
//! checked from the greeting), waited for through `JOB_STATUS_CHANGE` events and `query-jobs`,
//! then dismissed; the atomic disk-only `transaction`; the tags QEMU sees in each node; and the
//! guest agent's filesystem freeze.

use std::time::Duration;

use serde_json::{Value, json};

use super::disks::{SnapDisk, refused};
use crate::backend::core::Result;
use crate::backend::types::QemuError;
use crate::qga::QgaClient;
use crate::qmp::{QmpClient, QmpError};
use limiquantix_vm::BackendError;
use limiquantix_vm::model::VmId;

/// Longest wait for one snapshot job.
pub(super) const JOB_TIMEOUT: Duration = Duration::from_secs(600);
/// How often `query-jobs` is asked while waiting (events may be missed).
const POLL: Duration = Duration::from_millis(200);
/// Timeout of one `query-jobs` while a job runs (QEMU 7.2 runs the job in its main loop and
/// answers nothing until it is done).
const POLL_TIMEOUT: Duration = Duration::from_secs(2);

/// A live QEMU's snapshot commands.
pub(super) struct Live<'a> {
    pub qmp: &'a QmpClient,
    pub vm_id: &'a VmId,
}

impl Live<'_> {
    fn qmp_err(&self, source: QmpError) -> QemuError {
        QemuError::Qmp {
            vm_id: self.vm_id.clone(),
            source,
        }
    }

    /// Refuses when QEMU is older than 6.0 (no snapshot jobs).
    pub fn check_version(&self) -> Result<()> {
        let v = self.qmp.version();
        if v.major < 6 {
            return Err(refused(format!(
                "VM {}: QEMU {}.{}.{} has no snapshot-save job (QEMU 6.0 or newer takes live \
                 snapshots; stop the VM for a disk-only one)",
                self.vm_id, v.major, v.minor, v.micro
            )));
        }
        Ok(())
    }

    /// Runs job command `cmd` (`snapshot-save`, `snapshot-load`, `snapshot-delete`) for `tag`
    /// on `disks`, with the memory in the first disk for save and load, and waits for it.
    pub async fn job(&self, cmd: &str, tag: &str, disks: &[SnapDisk]) -> Result<()> {
        self.check_version()?;
        let job_id = format!("lq-{cmd}-{tag}");
        let devices: Vec<&str> = disks.iter().map(|d| d.node.as_str()).collect();
        let mut args = json!({ "job-id": job_id, "tag": tag, "devices": devices });
        if cmd != "snapshot-delete" {
            args["vmstate"] = json!(devices.first().copied().unwrap_or_default());
        }
        let events = self.qmp.subscribe();
        self.qmp
            .execute(cmd, Some(args))
            .await
            .map_err(|e| self.qmp_err(e))?;
        self.wait_job(&job_id, events, JOB_TIMEOUT).await
    }

    /// Waits until job `job_id` concludes, dismisses it and returns its error.
    pub async fn wait_job(
        &self,
        job_id: &str,
        mut events: tokio::sync::broadcast::Receiver<crate::qmp::QmpEvent>,
        limit: Duration,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let concluded = tokio::select! {
                ev = events.recv() => ev.is_ok_and(|e| e.name == "JOB_STATUS_CHANGE"
                    && e.data["id"] == job_id && e.data["status"] == "concluded"),
                () = tokio::time::sleep(POLL) => {
                    self.job_status(job_id).await?.is_some_and(|(s, _)| s == "concluded")
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Err(QemuError::Refused(BackendError::Timeout(format!(
                        "VM {}: snapshot job {job_id} did not finish within {limit:?}",
                        self.vm_id
                    ))));
                }
            };
            if concluded {
                break;
            }
        }
        let error = self.job_status(job_id).await?.and_then(|(_, e)| e);
        let _ = self
            .qmp
            .execute("job-dismiss", Some(json!({ "id": job_id })))
            .await;
        match error {
            None => Ok(()),
            Some(e) => Err(refused(format!("VM {}: {job_id}: {e}", self.vm_id))),
        }
    }

    /// The status and error of job `job_id` (`None`: no such job, or QEMU is busy).
    pub async fn job_status(&self, job_id: &str) -> Result<Option<(String, Option<String>)>> {
        let jobs = match self
            .qmp
            .execute_timeout("query-jobs", None, POLL_TIMEOUT)
            .await
        {
            Ok(j) => j,
            Err(QmpError::Timeout { .. }) => return Ok(None),
            Err(e) => return Err(self.qmp_err(e)),
        };
        Ok(jobs.as_array().and_then(|a| {
            a.iter().find(|j| j["id"] == job_id).map(|j| {
                let s = |k: &str| j[k].as_str().map(str::to_owned);
                (s("status").unwrap_or_default(), s("error"))
            })
        }))
    }

    /// Every unfinished job whose id is one of ours (`lq-…`), concluded ones dismissed.
    pub async fn our_jobs(&self) -> Result<Vec<String>> {
        let jobs = self
            .qmp
            .execute("query-jobs", None)
            .await
            .map_err(|e| self.qmp_err(e))?;
        let mut running = Vec::new();
        for j in jobs.as_array().into_iter().flatten() {
            let (Some(id), Some(status)) = (j["id"].as_str(), j["status"].as_str()) else {
                continue;
            };
            if !id.starts_with("lq-snapshot-") {
                continue;
            }
            if status == "concluded" {
                let _ = self
                    .qmp
                    .execute("job-dismiss", Some(json!({ "id": id })))
                    .await;
            } else {
                running.push(id.to_owned());
            }
        }
        Ok(running)
    }

    /// A disk-only snapshot `tag` of every disk at once: one `transaction` of
    /// `blockdev-snapshot-internal-sync` actions (atomic across the disks).
    pub async fn disk_only(&self, tag: &str, disks: &[SnapDisk]) -> Result<()> {
        let actions: Vec<Value> = disks
            .iter()
            .map(|d| {
                json!({ "type": "blockdev-snapshot-internal-sync",
                             "data": { "device": d.root, "name": tag } })
            })
            .collect();
        self.qmp
            .execute("transaction", Some(json!({ "actions": actions })))
            .await
            .map(drop)
            .map_err(|e| self.qmp_err(e))
    }

    /// The snapshot names QEMU sees in each disk's format node.
    pub async fn tags(&self, disks: &[SnapDisk]) -> Result<Vec<Vec<String>>> {
        let nodes = self
            .qmp
            .execute("query-named-block-nodes", Some(json!({ "flat": true })))
            .await
            .map_err(|e| self.qmp_err(e))?;
        Ok(disks.iter().map(|d| node_tags(&nodes, &d.node)).collect())
    }

    /// Deletes snapshot `tag` from one disk.
    pub async fn delete_tag(&self, tag: &str, disk: &SnapDisk) -> Result<()> {
        let args = json!({ "device": disk.root, "name": tag });
        self.qmp
            .execute("blockdev-snapshot-delete-internal-sync", Some(args))
            .await
            .map(drop)
            .map_err(|e| self.qmp_err(e))
    }
}

/// The snapshot names of node `node` in an answer of `query-named-block-nodes`.
fn node_tags(nodes: &Value, node: &str) -> Vec<String> {
    nodes
        .as_array()
        .and_then(|a| a.iter().find(|n| n["node-name"] == node))
        .and_then(|n| n.pointer("/image/snapshots"))
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(|s| s["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `work` with the guest's filesystems frozen by its agent: FAILED_PRECONDITION when the
/// agent does not freeze them; thawed afterwards whatever happened (also after a freeze that
/// timed out, which the guest may still carry out).
pub(super) async fn frozen<T>(
    vm_id: &VmId,
    qga: &QgaClient,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    if let Err(e) = qga.execute("guest-fsfreeze-freeze", None).await {
        thaw(vm_id, qga).await;
        return Err(refused(format!(
            "VM {vm_id}: quiesce needs the guest agent to freeze the filesystems, and it did not: \
             {e} (install and start qemu-guest-agent, or snapshot without quiesce)"
        )));
    }
    let out = work.await;
    thaw(vm_id, qga).await;
    out
}

async fn thaw(vm_id: &VmId, qga: &QgaClient) {
    if let Err(e) = qga.execute("guest-fsfreeze-thaw", None).await {
        tracing::warn!(vm_id = %vm_id, error = %e, "guest-fsfreeze-thaw failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_of_a_node() {
        let nodes = json!([
            { "node-name": "disk0-fmt", "image": { "snapshots": [{ "name": "snap-1" }, { "name": "snap-2" }] } },
            { "node-name": "disk1-fmt", "image": {} },
        ]);
        assert_eq!(node_tags(&nodes, "disk0-fmt"), ["snap-1", "snap-2"]);
        assert!(node_tags(&nodes, "disk1-fmt").is_empty());
        assert!(node_tags(&nodes, "disk2-fmt").is_empty());
    }
}
