//! The QMP steps hot-plug is made of, shared by disks, NICs and the reconciliation at adoption:
//! what QEMU has (`qom-list /machine/peripheral`, `query-named-block-nodes`, `query-pci`), a
//! free hot-plug port, unplugging a device and waiting for the guest to release it, and
//! removing a disk's block nodes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::core::{QemuBackend, Result};
use super::types::QemuError;
use super::vm::Vm;
use crate::argv::HOTPLUG_PORT_PREFIX;
use limiquantix_vm::model::MachineType;

/// Device drivers of hot-pluggable disks and NICs, as `qom-list` types them.
pub(super) const PLUGGABLE: [&str; 5] = [
    "virtio-blk-pci",
    "scsi-hd",
    "virtio-net-pci",
    "e1000",
    "rtl8139",
];

impl QemuBackend {
    /// Runs QMP `cmd` and returns its answer.
    pub(super) async fn qmp_ask(&self, vm: &Vm, cmd: &str, args: Option<Value>) -> Result<Value> {
        let q = self.qmp_of(vm).await?;
        q.execute(cmd, args).await.map_err(|source| QemuError::Qmp {
            vm_id: vm.id.clone(),
            source,
        })
    }

    /// The devices with an id: id → driver (`virtio-blk-pci`, ...).
    pub(super) async fn peripherals(&self, vm: &Vm) -> Result<BTreeMap<String, String>> {
        let list = self
            .qmp_ask(
                vm,
                "qom-list",
                Some(json!({ "path": "/machine/peripheral" })),
            )
            .await?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let name = p.get("name")?.as_str()?;
                let ty = p.get("type")?.as_str()?;
                let ty = ty.strip_prefix("child<")?.strip_suffix('>')?;
                Some((name.to_string(), ty.to_string()))
            })
            .collect())
    }

    /// The names of every block node.
    pub(super) async fn block_nodes(&self, vm: &Vm) -> Result<BTreeSet<String>> {
        let nodes = self
            .qmp_ask(vm, "query-named-block-nodes", Some(json!({ "flat": true })))
            .await?;
        Ok(nodes
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| Some(n.get("node-name")?.as_str()?.to_string()))
            .collect())
    }

    /// The `bus` a hot-plugged PCI device goes on: a free spare root port on q35 (`None` on
    /// `pc`, whose PCI bus takes it). No free port is [`QemuError::Plug`].
    pub(super) async fn plug_bus(&self, vm: &Vm, machine: MachineType) -> Result<Option<String>> {
        if machine != MachineType::Q35 {
            return Ok(None);
        }
        let pci = self.qmp_ask(vm, "query-pci", None).await?;
        free_port(&pci).map(Some).ok_or_else(|| QemuError::Plug {
            vm_id: vm.id.clone(),
            problem: format!(
                "no free hot-plug port: every spare PCIe root port ({HOTPLUG_PORT_PREFIX}0...) \
                 is taken, or the VM was started without them; detach a device, or stop the VM \
                 and attach it then"
            ),
        })
    }

    /// Asks QEMU to unplug `device_id` and waits for the guest to release it (`DEVICE_DELETED`)
    /// within the configured time; [`QemuError::UnplugTimeout`] otherwise.
    pub(super) async fn unplug(&self, vm: &Vm, device_id: &str) -> Result<()> {
        let q = self.qmp_of(vm).await?;
        let mut events = q.subscribe();
        self.qmp_ask(vm, "device_del", Some(json!({ "id": device_id })))
            .await?;
        let after = self.inner.config.unplug_timeout;
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(e) if e.name == "DEVICE_DELETED" => {
                        if e.data.get("device").and_then(Value::as_str) == Some(device_id) {
                            return true;
                        }
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return false,
                }
            }
        };
        let released = tokio::time::timeout(after, wait).await.unwrap_or(false);
        // A lost or late event: ask QEMU itself before calling it a timeout.
        if released || !self.peripherals(vm).await?.contains_key(device_id) {
            return Ok(());
        }
        Err(QemuError::UnplugTimeout {
            vm_id: vm.id.clone(),
            device_id: device_id.to_string(),
            after,
        })
    }

    /// Removes the block nodes of disk `id` that exist (throttle, format, file: top first) and
    /// its throttle group.
    pub(super) async fn drop_nodes(&self, vm: &Vm, id: &str) -> Result<()> {
        let present = self.block_nodes(vm).await?;
        for suffix in ["thr", "fmt", "file"] {
            let node = format!("{id}-{suffix}");
            if present.contains(&node) {
                let args = json!({ "node-name": node });
                self.qmp_ask(vm, "blockdev-del", Some(args)).await?;
            }
        }
        // Absent unless the disk had I/O limits.
        let _ = self
            .qmp_ask(vm, "object-del", Some(json!({ "id": format!("{id}-tg") })))
            .await;
        Ok(())
    }
}

/// The first spare root port with nothing behind it, from a `query-pci` answer.
fn free_port(pci: &Value) -> Option<String> {
    let mut free: Vec<(u32, String)> = pci
        .as_array()?
        .iter()
        .flat_map(|bus| bus.get("devices").and_then(Value::as_array).into_iter())
        .flatten()
        .filter_map(|d| {
            let id = d.get("qdev_id")?.as_str()?;
            let n: u32 = id.strip_prefix(HOTPLUG_PORT_PREFIX)?.parse().ok()?;
            let empty = d
                .pointer("/pci_bridge/devices")
                .and_then(Value::as_array)
                .is_none_or(|v| v.is_empty());
            empty.then(|| (n, id.to_string()))
        })
        .collect();
    free.sort();
    free.into_iter().next().map(|(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_empty_spare_port() {
        let pci = json!([{ "bus": 0, "devices": [
            { "qdev_id": "", "class_info": {} },
            { "qdev_id": "hp0", "pci_bridge": { "devices": [ { "qdev_id": "data1" } ] } },
            { "qdev_id": "hp2", "pci_bridge": { "devices": [] } },
            { "qdev_id": "hp1", "pci_bridge": { "devices": [] } },
            { "qdev_id": "hpx", "pci_bridge": { "devices": [] } },
        ] }]);
        assert_eq!(free_port(&pci).as_deref(), Some("hp1"));
        assert_eq!(free_port(&json!([{ "bus": 0, "devices": [] }])), None);
    }
}
