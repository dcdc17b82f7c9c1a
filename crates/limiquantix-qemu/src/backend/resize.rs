//! Growing a disk: live over QMP `block_resize` while QEMU runs (or is paused), with
//! `qemu-img resize` on the image file while it does not. Grow only, by the checks of
//! [`limiquantix_vm::resize`]: the current virtual size is read first (from QEMU's block node,
//! or from the file's header), and read back afterwards.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tracing::Instrument;

use super::core::{QemuBackend, Result, blocking};
use super::types::QemuError;
use super::vm::Vm;
use crate::argv::top_node;
use crate::persist;
use limiquantix_storage::{StorageError, detect_format, grow_image};
use limiquantix_vm::model::{DiskSpec, VmId};
use limiquantix_vm::resize::{check_grow, record_size, resizable_disk};
use limiquantix_vm::state::VmOp;

impl QemuBackend {
    /// Grows disk `disk_id` of VM `id` to `new_size_bytes` and returns its previous virtual
    /// size. On a running or paused VM the block node the disk's device attaches to is resized
    /// over QMP (the guest sees the new size at once); on a stopped or crashed one the image
    /// file is, with `qemu-img`. A smaller size is refused, the same size changes nothing. The
    /// definition records the new size of a blank or overlay disk.
    pub async fn resize_disk(&self, id: &VmId, disk_id: &str, new_size_bytes: u64) -> Result<u64> {
        let vm = self.vm(id)?;
        let span = tracing::info_span!("resize_disk", vm_id = %id, disk = disk_id, new_size_bytes);
        async {
            let _op = vm.op.lock().await;
            let state = Self::check(&vm, VmOp::ResizeDisk)?;
            let mut def = vm.cell().def.clone();
            let (index, disk) = resizable_disk(&def, disk_id, new_size_bytes)?;
            let disk = disk.clone();
            let previous = if state.is_active() {
                self.grow_live(&vm, &disk, new_size_bytes).await?
            } else {
                let file = vm
                    .paths
                    .disk_of(&def, index)
                    .unwrap_or_else(|| vm.paths.disk_file(index, disk.format));
                let qemu_img = &self.inner.config.qemu_img;
                grow_file(qemu_img, &vm.id, index, &disk, file, new_size_bytes).await?
            };
            if record_size(&mut def, index, new_size_bytes) {
                let json_path = vm.paths.vm_json();
                let saved = def.clone();
                blocking(move || Ok(persist::save_definition(&json_path, &saved)?)).await?;
                vm.cell().def = def;
            }
            if previous == new_size_bytes {
                tracing::info!(%state, "the disk has that size already");
            } else {
                tracing::info!(%state, previous, "disk grown");
            }
            Ok(previous)
        }
        .instrument(span)
        .await
    }

    /// Grows the disk's top block node over QMP; returns its size before.
    async fn grow_live(&self, vm: &Vm, disk: &DiskSpec, new_size_bytes: u64) -> Result<u64> {
        let node = top_node(&disk.id, disk.limits.as_ref());
        let current = self.node_size(vm, disk, &node).await?;
        if check_grow(&disk.id, current, new_size_bytes)? {
            let args = json!({ "node-name": node, "size": new_size_bytes });
            self.qmp_call(vm, "block_resize", Some(args)).await?;
            let now = self.node_size(vm, disk, &node).await?;
            if now != new_size_bytes {
                return Err(grow_failed(
                    &vm.id,
                    disk,
                    format!("QEMU reports {now} bytes for block node {node} after block_resize"),
                ));
            }
        }
        Ok(current)
    }

    /// The virtual size of block node `node`, from `query-named-block-nodes`.
    async fn node_size(&self, vm: &Vm, disk: &DiskSpec, node: &str) -> Result<u64> {
        let qmp = self.qmp_of(vm).await?;
        let nodes = qmp
            .execute("query-named-block-nodes", Some(json!({ "flat": true })))
            .await
            .map_err(|source| QemuError::Qmp {
                vm_id: vm.id.clone(),
                source,
            })?;
        named_node_size(&nodes, node).ok_or_else(|| {
            grow_failed(
                &vm.id,
                disk,
                format!("QEMU reports no block node {node} with a virtual size"),
            )
        })
    }
}

/// The virtual size of node `node` in an answer of `query-named-block-nodes`.
fn named_node_size(nodes: &Value, node: &str) -> Option<u64> {
    nodes
        .as_array()?
        .iter()
        .find(|n| n.get("node-name").and_then(Value::as_str) == Some(node))?
        .pointer("/image/virtual-size")?
        .as_u64()
}

/// Grows the image file of a VM without a QEMU; returns its virtual size before. The file must
/// have the format the definition declares (growing a qcow2 file as raw would corrupt it).
async fn grow_file(
    qemu_img: &Path,
    vm_id: &VmId,
    index: usize,
    disk: &DiskSpec,
    file: PathBuf,
    new_size_bytes: u64,
) -> Result<u64> {
    let f = file.clone();
    let found = blocking(move || Ok(detect_format(&f)?)).await?;
    if found.format() != disk.format {
        return Err(StorageError::FormatMismatch {
            field: format!("disks[{index}].format"),
            path: file,
            declared: disk.format.qemu_name(),
            detected: found.format().qemu_name(),
        }
        .into());
    }
    let current = found.virtual_size();
    if check_grow(&disk.id, current, new_size_bytes)? {
        grow_image(qemu_img, &file, disk.format, new_size_bytes)
            .await
            .map_err(|e| grow_failed(vm_id, disk, e.to_string()))?;
    }
    Ok(current)
}

fn grow_failed(vm_id: &VmId, disk: &DiskSpec, problem: String) -> QemuError {
    QemuError::Grow {
        vm_id: vm_id.clone(),
        disk_id: disk.id.clone(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_of_a_named_node() {
        let answer = json!([
            { "node-name": "disk0-thr", "image": { "virtual-size": 3 } },
            { "node-name": "disk0-fmt", "image": { "virtual-size": 2 } },
            { "node-name": "disk0-file", "image": { "virtual-size": 1 } },
            { "node-name": "odd" },
        ]);
        assert_eq!(named_node_size(&answer, "disk0-fmt"), Some(2));
        assert_eq!(named_node_size(&answer, "disk0-thr"), Some(3));
        assert_eq!(named_node_size(&answer, "odd"), None);
        assert_eq!(named_node_size(&answer, "disk1-fmt"), None);
        assert_eq!(named_node_size(&json!({}), "disk0-fmt"), None);
    }
}
