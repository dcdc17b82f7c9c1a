//! What the backend answers without changing a VM: its configuration and events, a VM's
//! status, definition and file layout, and the QMP and guest-agent clients of a running VM.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::core::{QemuBackend, Result, lock};
use super::types::{BackendConfig, QemuError};
use crate::paths::RuntimePaths;
use crate::qmp::QmpClient;
use limiquantix_vm::accel::AccelKind;
use limiquantix_vm::model::{VmDefinition, VmId};
use limiquantix_vm::{VmEntry, VmEvent, VmStatus};

impl QemuBackend {
    /// The configuration the backend was opened with.
    pub fn config(&self) -> &BackendConfig {
        &self.inner.config
    }

    /// The accelerator VMs run with.
    pub fn accel(&self) -> AccelKind {
        self.inner.host.accel
    }

    /// The accelerator VMs run with and why it was chosen (the KVM probe's outcome).
    pub fn accel_choice(&self) -> &limiquantix_vm::accel::AccelChoice {
        &self.inner.accel_choice
    }

    /// Follows events of every VM from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<VmEvent> {
        self.inner.events.subscribe()
    }

    /// The VM's status, from the backend's own state (QMP events and the monitor keep it
    /// current): no QMP round trip, so its cost does not grow with the number of VMs.
    pub async fn status(&self, id: &VmId) -> Result<VmStatus> {
        Ok(self.vm(id)?.status())
    }

    /// Every VM with its status (from memory; no QMP calls), in id order.
    pub fn list(&self) -> Vec<VmEntry> {
        let vms: Vec<_> = lock(&self.inner.vms).values().cloned().collect();
        vms.iter().map(|v| v.entry()).collect()
    }

    /// A VM's definition.
    pub fn get(&self, id: &VmId) -> Result<VmDefinition> {
        Ok(self.vm(id)?.cell().def.clone())
    }

    /// A VM's file layout (VM directory, `vm.json`, logs, sockets, pidfile, seed).
    pub fn paths(&self, id: &VmId) -> Result<RuntimePaths> {
        Ok(self.vm(id)?.paths.clone())
    }

    /// The QMP client of a running VM, for queries the backend does not wrap (`query-vnc`, ...).
    pub async fn qmp(&self, id: &VmId) -> Result<Arc<QmpClient>> {
        let vm = self.vm(id)?;
        let state = vm.cell().state;
        if !state.is_active() {
            return Err(QemuError::NotRunning {
                vm_id: vm.id.clone(),
                state,
            });
        }
        self.qmp_of(&vm).await
    }

    /// The VM's guest-agent client (one per VM, shared: QEMU serves one QGA connection at a time,
    /// so callers must not open their own while this one is in use). Connects on first use.
    pub fn qga(&self, id: &VmId) -> Result<Arc<crate::qga::QgaClient>> {
        Ok(self.vm(id)?.qga.clone())
    }
}
