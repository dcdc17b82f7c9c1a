//! StreamEvents: backend events, and the daemon's own (VM defined, VM deleted), as NodeEvents.

use super::core::{BoxStream, NodeService};
use limiquantix_proto::v1 as pb;
use limiquantix_vm::hotplug::DeviceKind;
use limiquantix_vm::model::VmId;
use limiquantix_vm::{VmBackend, VmEvent, VmEventKind};
use std::collections::BTreeMap;
use tokio::sync::broadcast;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tonic::Status;

/// The wire event of a backend event.
pub(super) fn node_event(e: &VmEvent) -> pb::NodeEvent {
    let mut metadata = BTreeMap::new();
    let (kind, detail) = match &e.kind {
        VmEventKind::Defined => (pb::EventType::VmCreated, None),
        VmEventKind::Started => (pb::EventType::VmStarted, None),
        VmEventKind::Stopped => (pb::EventType::VmStopped, None),
        VmEventKind::Paused => (pb::EventType::VmPaused, None),
        VmEventKind::Resumed => (pb::EventType::VmResumed, None),
        VmEventKind::Reset { .. } => (pb::EventType::VmRebooted, None),
        VmEventKind::Crashed { .. } => (pb::EventType::VmCrashed, None),
        VmEventKind::Deleted => (pb::EventType::VmDeleted, None),
        VmEventKind::Boot { phase } => {
            metadata.insert(
                "phase".to_string(),
                boot_phase_name(crate::translate::wire_boot_phase(phase)),
            );
            (pb::EventType::Unknown, Some("boot-phase".to_string()))
        }
        VmEventKind::AgentConnected => (pb::EventType::AgentConnected, None),
        VmEventKind::AgentDisconnected => (pb::EventType::AgentDisconnected, None),
        VmEventKind::SnapshotCreated { snapshot_id }
        | VmEventKind::SnapshotReverted { snapshot_id }
        | VmEventKind::SnapshotDeleted { snapshot_id } => {
            metadata.insert("snapshot_id".to_string(), snapshot_id.clone());
            (snapshot_event(&e.kind), None)
        }
        VmEventKind::Shutdown { .. } => (pb::EventType::Unknown, Some("shutdown".to_string())),
        VmEventKind::GuestPanicked { .. } => {
            (pb::EventType::Unknown, Some("guest-panicked".to_string()))
        }
        VmEventKind::DeviceAttached { kind, device_id } => {
            metadata.insert("device_id".to_string(), device_id.clone());
            (hotplug_event(*kind, true), None)
        }
        VmEventKind::DeviceDetached { kind, device_id } => {
            metadata.insert("device_id".to_string(), device_id.clone());
            (hotplug_event(*kind, false), None)
        }
        VmEventKind::MigratedOut { target } => {
            metadata.insert("target".to_string(), target.clone());
            (pb::EventType::VmMigratedOut, None)
        }
        VmEventKind::MigratedIn => (pb::EventType::VmMigratedIn, None),
    };
    if let Some(what) = detail {
        metadata.insert("kind".to_string(), what);
    }
    pb::NodeEvent {
        id: uuid::Uuid::new_v4().to_string(),
        timestamp: Some(prost_types::Timestamp::from(e.at)),
        r#type: kind as i32,
        vm_id: e.vm_id.as_str().to_string(),
        message: e.message.clone(),
        metadata,
    }
}

/// The wire type of a snapshot event.
fn snapshot_event(kind: &VmEventKind) -> pb::EventType {
    match kind {
        VmEventKind::SnapshotCreated { .. } => pb::EventType::SnapshotCreated,
        VmEventKind::SnapshotReverted { .. } => pb::EventType::SnapshotReverted,
        _ => pb::EventType::SnapshotDeleted,
    }
}

/// The wire event type of a disk or NIC attached (`true`) or detached.
fn hotplug_event(kind: DeviceKind, attached: bool) -> pb::EventType {
    match (kind, attached) {
        (DeviceKind::Disk, true) => pb::EventType::DiskAttached,
        (DeviceKind::Disk, false) => pb::EventType::DiskDetached,
        (DeviceKind::Nic, true) => pb::EventType::NicAttached,
        (DeviceKind::Nic, false) => pb::EventType::NicDetached,
    }
}

/// The phase's wire name without its prefix, lower case (`ready`, `cloud_init_running`).
fn boot_phase_name(p: pb::BootPhase) -> String {
    p.as_str_name()
        .trim_start_matches("BOOT_PHASE_")
        .to_ascii_lowercase()
}

/// How a subscriber that fell `n` events behind is told it was dropped: its stream ends with
/// this status (the events it missed are gone; the VMs' states are not).
pub(super) fn dropped_status(n: u64) -> Status {
    Status::resource_exhausted(format!(
        "StreamEvents: this subscriber fell behind and {n} events were dropped for it; the \
         stream ends here (other subscribers are unaffected): subscribe again and read the VMs' \
         state with ListVMs"
    ))
}

/// Forwards backend events (except define/delete, which the service reports itself) to `tx`.
pub(super) fn forward(mut rx: broadcast::Receiver<VmEvent>, tx: broadcast::Sender<pb::NodeEvent>) {
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(e) if matches!(e.kind, VmEventKind::Defined | VmEventKind::Deleted) => {}
                Ok(e) => {
                    tracing::debug!(vm_id = %e.vm_id, kind = ?e.kind, "VM event");
                    let _ = tx.send(node_event(&e));
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        dropped = n,
                        "event forwarder fell behind; events were dropped"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

impl<B: VmBackend> NodeService<B> {
    /// Publishes an event of the daemon's own.
    pub(super) fn emit(&self, id: &VmId, kind: VmEventKind, message: String) {
        let event = VmEvent::with_message(id.clone(), kind, message);
        let _ = self.inner.events.send(node_event(&event));
    }

    pub(super) fn event_stream(&self) -> BoxStream<pb::NodeEvent> {
        // A task per subscriber copies events into a channel, and stops (ending the stream)
        // at shutdown or when the client goes away. Publishing never waits for a subscriber:
        // one that falls more than the channel's capacity behind is dropped with a status
        // ([`dropped_status`]) and the others go on.
        let mut events = BroadcastStream::new(self.inner.events.subscribe());
        let mut shutdown = self.inner.shutdown.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    item = events.next() => item,
                    _ = shutdown.wait_for(|s| *s) => None,
                    () = tx.closed() => None,
                };
                let Some(item) = item else { break };
                let event = match item {
                    Ok(event) => Ok(event),
                    Err(BroadcastStreamRecvError::Lagged(n)) => {
                        tracing::warn!(
                            dropped = n,
                            "a StreamEvents subscriber fell behind: dropped"
                        );
                        Err(dropped_status(n))
                    }
                };
                let last = event.is_err();
                if tx.send(event).await.is_err() || last {
                    break;
                }
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }
}
