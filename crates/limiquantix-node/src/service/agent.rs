//! What guest agents report about their guests, for GetVMStatus and ListVMs.
//!
//! Asking an agent costs a round trip through the guest (and up to the agent client's timeout
//! when no agent runs yet), so answers are cached per VM:
//! * GetVMStatus asks the agent itself when the last answer is older than [`super::agent_cache::FRESH`] and the
//!   guest's boot is over (ready or failed); earlier in the boot it answers from the cache and
//!   refreshes in the background, so a status call never waits on an agent that is not up yet.
//! * ListVMs answers from the cache and refreshes stale entries in the background.
//! * A guest reaching `ready` refreshes its entry at once; a VM that stops, crashes, reboots or
//!   is deleted loses it.
//!
//! The first answer after none (or after a failure) publishes `EVENT_TYPE_AGENT_CONNECTED`; the
//! first failure after an answer publishes `EVENT_TYPE_AGENT_DISCONNECTED`.

use super::core::{Inner, NodeService};
use limiquantix_proto::v1 as pb;
use limiquantix_vm::model::VmId;
use limiquantix_vm::readiness::BootPhase;
use limiquantix_vm::{GuestFacts, GuestUsage, VmBackend, VmEntry, VmEvent, VmEventKind, VmState};
use std::sync::{Arc, Weak};
use std::time::SystemTime;
use tokio::sync::broadcast;

/// The wire form of what the agent said.
/// The guest's view of its resources, on the wire (memory figures are 0 when the agent could
/// not read the guest's `/proc`).
fn wire_usage(u: &GuestUsage) -> pb::GuestResourceUsage {
    pb::GuestResourceUsage {
        memory_total_bytes: u.memory_total,
        memory_used_bytes: u.memory_total.saturating_sub(u.memory_available),
        memory_available_bytes: u.memory_available,
        swap_total_bytes: u.swap_total,
        swap_used_bytes: u.swap_total.saturating_sub(u.swap_free),
        load_avg_1: u.load[0],
        load_avg_5: u.load[1],
        load_avg_15: u.load[2],
        process_count: u.processes,
        uptime_seconds: u.uptime_seconds,
        disks: u
            .filesystems
            .iter()
            .map(|f| pb::GuestDiskUsage {
                mount_point: f.mount_point.clone(),
                device: f.device.clone(),
                filesystem: f.fstype.clone(),
                total_bytes: f.total_bytes,
                used_bytes: f.used_bytes,
                available_bytes: f.total_bytes.saturating_sub(f.used_bytes),
                usage_percent: if f.total_bytes == 0 {
                    0.0
                } else {
                    f.used_bytes as f64 * 100.0 / f.total_bytes as f64
                },
            })
            .collect(),
        cpu_usage_percent: 0.0,
    }
}

fn wire_info(f: GuestFacts) -> pb::GuestAgentInfo {
    let mut ip_addresses = Vec::new();
    let interfaces = f
        .interfaces
        .into_iter()
        .map(|nic| {
            let mut ipv4 = Vec::new();
            let mut ipv6 = Vec::new();
            for (addr, prefix) in &nic.addresses {
                let reachable = !addr.is_loopback()
                    && !matches!(addr, std::net::IpAddr::V6(v6) if v6.is_unicast_link_local());
                if reachable {
                    ip_addresses.push(addr.to_string());
                }
                let text = format!("{addr}/{prefix}");
                if addr.is_ipv4() {
                    ipv4.push(text);
                } else {
                    ipv6.push(text);
                }
            }
            pb::GuestNetworkInterface {
                name: nic.name,
                mac_address: nic.mac,
                // The agent does not report link state: an interface with an address is up.
                is_up: !nic.addresses.is_empty(),
                ipv4_addresses: ipv4,
                ipv6_addresses: ipv6,
            }
        })
        .collect();
    pb::GuestAgentInfo {
        connected: true,
        version: f.agent_version,
        os_name: f.os_name,
        os_version: f.os_version,
        kernel_version: f.kernel_release,
        hostname: f.hostname,
        ip_addresses,
        interfaces,
        resource_usage: Some(wire_usage(&f.usage)),
        capabilities: f.capabilities,
        last_seen: Some(prost_types::Timestamp::from(SystemTime::now())),
    }
}

impl<B: VmBackend> NodeService<B> {
    /// What the VM's agent reports, for a status answer. `wait`: ask the agent now when the
    /// cached answer is stale and the boot is over (GetVMStatus); otherwise refresh in the
    /// background (ListVMs).
    pub(super) async fn guest_agent(
        &self,
        entry: &VmEntry,
        wait: bool,
    ) -> Option<pb::GuestAgentInfo> {
        let id = &entry.definition.id;
        if entry.status.state != VmState::Running {
            return None;
        }
        let (cached, stale) = self.inner.agents.peek(id);
        if !stale {
            return cached;
        }
        let boot_over = entry
            .status
            .boot
            .as_ref()
            .is_some_and(BootPhase::is_terminal);
        if wait && boot_over {
            // Asked even when a background attempt is under way: this caller waits for a
            // current answer, and the agent client serialises the two.
            self.inner.agents.claim(id);
            return Some(ask(&self.inner, id).await);
        }
        if !self.inner.agents.claim(id) {
            return cached;
        }
        let inner = Arc::downgrade(&self.inner);
        let id = id.clone();
        tokio::spawn(async move {
            if let Some(inner) = inner.upgrade() {
                ask(&inner, &id).await;
            }
        });
        cached
    }
}

/// Asks the agent (the caller has claimed the entry), records and returns the
/// answer, and publishes a connection change.
async fn ask<B: VmBackend>(inner: &Inner<B>, id: &VmId) -> pb::GuestAgentInfo {
    let info = match inner.backend.guest_facts(id).await {
        Ok(facts) => wire_info(facts),
        Err(e) => {
            tracing::debug!(vm_id = %id, error = %e, "guest agent did not answer");
            // Keep what the agent said last, marked as no longer current.
            let (last, _) = inner.agents.peek(id);
            pb::GuestAgentInfo {
                connected: false,
                ..last.unwrap_or_default()
            }
        }
    };
    if let Some(connected) = inner.agents.record(id, info.clone()) {
        let kind = if connected {
            VmEventKind::AgentConnected
        } else {
            VmEventKind::AgentDisconnected
        };
        tracing::info!(vm_id = %id, connected, "guest agent connection changed");
        let event = VmEvent::now(id.clone(), kind);
        let _ = inner.events.send(super::events::node_event(&event));
    }
    info
}

/// Keeps the cache in step with the VMs' lives: a guest that becomes ready is asked at once; a
/// VM that stops, crashes, reboots or goes away is forgotten.
pub(super) fn follow<B: VmBackend>(mut rx: broadcast::Receiver<VmEvent>, inner: Weak<Inner<B>>) {
    tokio::spawn(async move {
        loop {
            let event = match rx.recv().await {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            };
            let Some(inner) = inner.upgrade() else { break };
            match event.kind {
                VmEventKind::Stopped
                | VmEventKind::Crashed { .. }
                | VmEventKind::Reset { .. }
                | VmEventKind::Deleted => inner.agents.forget(&event.vm_id),
                VmEventKind::Boot {
                    phase: BootPhase::Ready,
                } => {
                    inner.agents.forget(&event.vm_id);
                    if inner.agents.claim(&event.vm_id) {
                        let id = event.vm_id.clone();
                        tokio::spawn(async move {
                            ask(&inner, &id).await;
                        });
                    }
                }
                _ => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use limiquantix_vm::GuestNic;

    #[test]
    fn addresses_for_people_leave_out_loopback_and_link_local() {
        let info = wire_info(GuestFacts {
            interfaces: vec![
                GuestNic {
                    name: "lo".into(),
                    mac: String::new(),
                    addresses: vec![
                        ("127.0.0.1".parse().unwrap(), 8),
                        ("::1".parse().unwrap(), 128),
                    ],
                },
                GuestNic {
                    name: "eth0".into(),
                    mac: "52:54:00:12:34:56".into(),
                    addresses: vec![
                        ("10.0.2.15".parse().unwrap(), 24),
                        ("fe80::1".parse().unwrap(), 64),
                        ("2001:db8::5".parse().unwrap(), 64),
                    ],
                },
                GuestNic {
                    name: "eth1".into(),
                    mac: "52:54:00:12:34:57".into(),
                    addresses: vec![],
                },
            ],
            ..GuestFacts::default()
        });
        assert!(info.connected);
        assert_eq!(info.ip_addresses, ["10.0.2.15", "2001:db8::5"]);
        assert_eq!(info.interfaces[1].ipv4_addresses, ["10.0.2.15/24"]);
        assert_eq!(
            info.interfaces[1].ipv6_addresses,
            ["fe80::1/64", "2001:db8::5/64"]
        );
        assert!(info.interfaces[1].is_up);
        assert!(!info.interfaces[2].is_up);
    }
}
