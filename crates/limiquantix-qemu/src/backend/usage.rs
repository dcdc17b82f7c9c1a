//! The backend's side of the metrics collector: which VMs to sample (running ones, with their
//! process, QMP connection, disks and taps) and the task's start.

use std::sync::{Arc, Weak};

use super::core::{Inner, QemuBackend, lock};
use crate::metrics::collector::{self, Target};
use crate::process::QemuProcess;
use limiquantix_vm::model::{NicNetwork, VmId};
use limiquantix_vm::{VmState, VmUsage};
use std::collections::BTreeMap;

/// Every VM whose QEMU runs, as the collector samples it.
fn targets(inner: &Inner) -> Vec<Target> {
    let vms: Vec<_> = lock(&inner.vms).values().cloned().collect();
    vms.iter()
        .filter_map(|vm| {
            let c = vm.cell();
            if !matches!(c.state, VmState::Running | VmState::Paused) {
                return None;
            }
            Some(Target {
                id: vm.id.clone(),
                pid: c.process.as_ref().map(QemuProcess::pid)?,
                qmp: c.qmp.clone(),
                disks: c.def.disks.iter().map(|d| d.id.clone()).collect(),
                taps: c
                    .def
                    .nics
                    .iter()
                    .filter_map(|n| match &n.network {
                        NicNetwork::Tap { ifname } => Some(ifname.clone()),
                        _ => None,
                    })
                    .collect(),
            })
        })
        .collect()
}

impl QemuBackend {
    /// Starts the collector task (stopped with the backend, like the monitors).
    pub(super) fn start_collector(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let interval = self.inner.config.metrics_interval;
        let store = self.inner.usage.clone();
        let task = tokio::spawn(collector::run(interval, store, move || {
            weak.upgrade().map(|i| targets(&i))
        }));
        lock(&self.inner.monitors).push(task.abort_handle());
    }

    /// The last usage sample of every running VM (from the collector; no QMP call).
    pub fn usage(&self) -> BTreeMap<VmId, VmUsage> {
        self.inner.usage.snapshot()
    }
}
