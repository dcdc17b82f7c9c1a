//! NIC hot-plug: `netdev_add` + `device_add` on a free spare root port, and `device_del` (the
//! guest releases the device) + `netdev_del`; the definition is saved after the live steps, as
//! for disks (`hotplug`).

use serde_json::json;
use tracing::Instrument;

use super::core::{QemuBackend, Result};
use super::vm::Vm;
use crate::argv::nic_plug;
use crate::fault;
use limiquantix_vm::VmEventKind;
use limiquantix_vm::hotplug::{DeviceKind, nic_index, plan_attach_nic, without_device};
use limiquantix_vm::model::{NicSpec, VmDefinition, VmId};
use limiquantix_vm::state::VmOp;

impl QemuBackend {
    /// Attaches `nic` to VM `id` (see [`limiquantix_vm::VmBackend::attach_nic`]); returns the
    /// NIC as recorded (with its MAC).
    pub async fn attach_nic(
        &self,
        id: &VmId,
        nic: NicSpec,
        api_id: Option<String>,
    ) -> Result<NicSpec> {
        let vm = self.vm(id)?;
        let span = tracing::info_span!("attach_nic", vm_id = %id, nic = %nic.id);
        async {
            let _op = vm.op.lock().await;
            let live = Self::check(&vm, VmOp::AttachNic)?.is_active();
            let def = vm.cell().def.clone();
            let next = plan_attach_nic(&def, nic, api_id)?;
            let index = next.nics.len() - 1;
            if live {
                self.plug_nic(&vm, &next, index).await?;
            }
            self.save(&vm, next.clone()).await?;
            let nic = next.nics[index].clone();
            tracing::info!(live, mac = ?nic.mac, "NIC attached");
            let (kind, device_id) = (DeviceKind::Nic, nic.id.clone());
            self.inner
                .emit(id, VmEventKind::DeviceAttached { kind, device_id });
            Ok(nic)
        }
        .instrument(span)
        .await
    }

    /// Detaches NIC `nic_id` of VM `id` (see [`limiquantix_vm::VmBackend::detach_nic`]).
    pub async fn detach_nic(&self, id: &VmId, nic_id: &str) -> Result<()> {
        let vm = self.vm(id)?;
        let span = tracing::info_span!("detach_nic", vm_id = %id, nic = nic_id);
        async {
            let _op = vm.op.lock().await;
            let live = Self::check(&vm, VmOp::DetachNic)?.is_active();
            let def = vm.cell().def.clone();
            nic_index(&def, nic_id)?;
            if live {
                self.unplug_nic(&vm, nic_id).await?;
            }
            self.save(&vm, without_device(&def, nic_id)).await?;
            tracing::info!(live, "NIC detached");
            let (kind, device_id) = (DeviceKind::Nic, nic_id.to_string());
            self.inner
                .emit(id, VmEventKind::DeviceDetached { kind, device_id });
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Hot-plugs NIC number `index` of `def`. A leftover netdev of an earlier attempt is
    /// removed first; a failed `device_add` removes the netdev again.
    pub(super) async fn plug_nic(&self, vm: &Vm, def: &VmDefinition, index: usize) -> Result<()> {
        let (netdev, mut device) = nic_plug(def, index, &[]);
        let netdev_id = json!({ "id": format!("{}-net", def.nics[index].id) });
        let _ = self
            .qmp_ask(vm, "netdev_del", Some(netdev_id.clone()))
            .await;
        self.qmp_ask(vm, "netdev_add", Some(netdev)).await?;
        fault::point("attachnic:after-netdev");
        let added = match self.plug_bus(vm, def.effective_machine()).await {
            Ok(bus) => {
                if let Some(bus) = bus {
                    device["bus"] = bus.into();
                }
                self.qmp_ask(vm, "device_add", Some(device)).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = added {
            let _ = self.qmp_ask(vm, "netdev_del", Some(netdev_id)).await;
            return Err(e);
        }
        fault::point("attachnic:after-device");
        Ok(())
    }

    /// Unplugs NIC `nic_id` when QEMU has it, then removes its netdev (absent is fine).
    pub(super) async fn unplug_nic(&self, vm: &Vm, nic_id: &str) -> Result<()> {
        if self.peripherals(vm).await?.contains_key(nic_id) {
            self.unplug(vm, nic_id).await?;
            fault::point("detachnic:after-device-del");
        }
        let args = json!({ "id": format!("{nic_id}-net") });
        let _ = self.qmp_ask(vm, "netdev_del", Some(args)).await;
        Ok(())
    }
}
