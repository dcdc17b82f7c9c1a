//! The control-plane task: register (with backoff), report the inventory, send heartbeats;
//! register again when the control plane forgets the node.

use super::backoff::{Backoff, FailureLog};
use super::connect::{Code, ConnectClient, ConnectError};
use super::facts::{NodeFacts, route_address};
use super::identity;
use super::inventory::{scan_images, vm_info, vm_report};
use super::status::ClusterStatus;
use super::usage::{CpuSampler, HostUsage};
use crate::config::{Config, ControlPlane};
use crate::pools::PoolRegistry;
use limiquantix_proto::compute::v1 as compute;
use limiquantix_proto::storage::v1 as storage;
use limiquantix_vm::{VmBackend, VmEntry};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum AgentError {
    /// The control plane refused or could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// No management address.
    #[error("management address: {0}")]
    Address(String),
    /// RegisterNode answered without an id.
    #[error("RegisterNode answered a node without an id")]
    NoId,
    /// A blocking read panicked or was cancelled.
    #[error("host facts: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl AgentError {
    fn code(&self) -> Option<Code> {
        match self {
            Self::Connect(e) => e.code(),
            _ => None,
        }
    }
}

/// The task's state.
pub(super) struct Agent<B> {
    client: ConnectClient,
    settings: ControlPlane,
    backend: Arc<B>,
    state_dir: PathBuf,
    images_dir: PathBuf,
    /// The node's pools, as they are now (InitStoragePool adds to them).
    pools: Arc<PoolRegistry>,
    status: watch::Sender<ClusterStatus>,
    cpu: CpuSampler,
    /// False once the control plane answered SyncFullState with `unimplemented`.
    full_state: bool,
    /// The host facts of the last registration.
    facts: NodeFacts,
    link: FailureLog,
}

impl<B: VmBackend> Agent<B> {
    /// The task for `settings`, reporting through `status`.
    pub(super) fn new(
        client: ConnectClient,
        settings: ControlPlane,
        config: &Config,
        backend: Arc<B>,
        pools: Arc<PoolRegistry>,
        status: watch::Sender<ClusterStatus>,
    ) -> Self {
        Agent {
            client,
            settings,
            backend,
            state_dir: config.state_dir.clone(),
            images_dir: config.images_dir.clone(),
            pools,
            status,
            cpu: CpuSampler::default(),
            full_state: true,
            facts: NodeFacts::default(),
            link: FailureLog::new("control plane"),
        }
    }

    /// Runs until the runtime ends: register, report, heartbeat; again after a `not_found`.
    pub(super) async fn run(mut self) {
        let (state_dir, url) = (self.state_dir.clone(), self.settings.url.clone());
        match tokio::task::spawn_blocking(move || identity::load(&state_dir, &url)).await {
            Ok(Some(id)) => self.status.send_modify(|s| s.node_id = id),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the saved node id"),
        }
        tracing::info!(
            control_plane = %self.settings.url,
            heartbeat_interval_secs = self.settings.heartbeat_interval.as_secs(),
            "joining the control plane"
        );
        // The first sample of /proc/stat, so the first heartbeat has a CPU figure.
        self.host_usage().await.ok();
        loop {
            let node_id = self.register().await;
            self.report_inventory(&node_id).await;
            self.heartbeats(&node_id).await;
        }
    }

    /// RegisterNode until it succeeds; returns the node id.
    async fn register(&mut self) -> String {
        let mut backoff = Backoff::default();
        loop {
            match self.try_register().await {
                Ok(id) => {
                    self.link.succeeded();
                    return id;
                }
                Err(e) => {
                    self.failed(&e);
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// One RegisterNode: the host's facts and management address; the id saved and published.
    async fn try_register(&mut self) -> Result<String, AgentError> {
        let facts = tokio::task::spawn_blocking(NodeFacts::read).await?;
        let ip = match self.settings.management_ip {
            Some(ip) => ip,
            None => route_address(&self.settings.url)
                .await
                .map_err(AgentError::Address)?,
        };
        let node = self
            .client
            .register_node(&facts.register_request(ip))
            .await?;
        if node.id.is_empty() {
            return Err(AgentError::NoId);
        }
        self.save_id(&node.id).await;
        self.status.send_modify(|s| {
            s.registered = true;
            s.node_id = node.id.clone();
            s.management_ip = Some(ip);
            s.last_error = None;
        });
        tracing::info!(
            node_id = %node.id,
            hostname = %facts.hostname,
            management_ip = %ip,
            "registered with the control plane"
        );
        self.facts = facts;
        Ok(node.id)
    }

    /// Saves a node id that differs from the one known.
    async fn save_id(&self, node_id: &str) {
        let known = self.status.borrow().node_id.clone();
        if known == node_id {
            return;
        }
        if !known.is_empty() {
            tracing::info!(old = %known, new = %node_id, "the control plane assigned a new node id");
        }
        let (dir, url, id) = (
            self.state_dir.clone(),
            self.settings.url.clone(),
            node_id.to_string(),
        );
        match tokio::task::spawn_blocking(move || identity::save(&dir, &url, &id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot save the node id"),
            Err(e) => tracing::warn!(error = %e, "cannot save the node id"),
        }
    }

    /// After a registration: the VMs, the images, and the full state while it is implemented.
    async fn report_inventory(&mut self, node_id: &str) {
        let vms = match self.backend.list().await {
            Ok(vms) => vms,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the VMs for the control plane");
                Vec::new()
            }
        };
        let request = compute::SyncNodeVMsRequest {
            node_id: node_id.to_string(),
            vms: vms.iter().map(vm_info).collect(),
        };
        match self.client.sync_node_vms(&request).await {
            Ok(r) => tracing::info!(
                vms = request.vms.len(),
                imported = r.imported_count,
                existing = r.existing_count,
                "VMs reported to the control plane"
            ),
            Err(e) => self.failed(&e.into()),
        }
        self.report_images(node_id).await;
        if self.full_state {
            self.report_full_state(node_id, &vms).await;
        }
    }

    /// ScanLocalImages with the library's and the pools' images.
    async fn report_images(&mut self, node_id: &str) {
        let (dir, pools) = (self.images_dir.clone(), self.pools.dirs());
        let images = match tokio::task::spawn_blocking(move || scan_images(&dir, &pools)).await {
            Ok(images) => images,
            Err(e) => return self.failed(&e.into()),
        };
        let request = storage::ScanLocalImagesRequest {
            node_id: node_id.to_string(),
            images,
        };
        match self.client.scan_local_images(&request).await {
            Ok(r) => tracing::info!(
                images = request.images.len(),
                registered = r.registered_count,
                existing = r.existing_count,
                "images reported to the control plane"
            ),
            Err(e) => self.failed(&e.into()),
        }
    }

    /// SyncFullState; an `unimplemented` answer stops it for the life of the daemon.
    async fn report_full_state(&mut self, node_id: &str, vms: &[VmEntry]) {
        let (usage, cpu) = match self.host_usage().await {
            Ok(u) => u,
            Err(e) => return self.failed(&e),
        };
        let ip = self.status.borrow().management_ip;
        let request = compute::SyncFullStateRequest {
            node_id: node_id.to_string(),
            host_info: Some(compute::HostInfo {
                hostname: self.facts.hostname.clone(),
                management_ip: ip.map(|ip| ip.to_string()).unwrap_or_default(),
                memory_total_bytes: usage.memory.total,
                memory_available_bytes: usage.memory.available,
                cpu_cores: self.facts.cpu.total_threads,
                cpu_usage_percent: cpu,
            }),
            vms: vms.iter().map(vm_report).collect(),
            storage_pools: usage.pools,
            state_hash: String::new(),
        };
        match self.client.sync_full_state(&request).await {
            Ok(_) => tracing::info!(vms = vms.len(), "full state reported to the control plane"),
            Err(e) if e.code() == Some(Code::Unimplemented) => {
                tracing::debug!(
                    "the control plane does not implement SyncFullState; not sent again"
                );
                self.full_state = false;
            }
            Err(e) => self.failed(&e.into()),
        }
    }

    /// Heartbeats at the interval, the first at once; returns when the control plane no longer
    /// knows `node_id`.
    async fn heartbeats(&mut self, node_id: &str) {
        let mut ticker = tokio::time::interval(self.settings.heartbeat_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.heartbeat(node_id).await {
                Ok(answer) => self.acknowledged(&answer),
                Err(e) if e.code() == Some(Code::NotFound) => {
                    tracing::warn!(
                        node_id,
                        error = %e,
                        "the control plane does not know this node; registering again"
                    );
                    let message = e.to_string();
                    self.status.send_modify(|s| {
                        s.registered = false;
                        s.last_error = Some(message);
                        s.last_error_at = Some(SystemTime::now());
                    });
                    return;
                }
                Err(e) => self.failed(&e),
            }
        }
    }

    /// One UpdateHeartbeat.
    async fn heartbeat(
        &mut self,
        node_id: &str,
    ) -> Result<compute::UpdateHeartbeatResponse, AgentError> {
        let (usage, cpu) = self.host_usage().await?;
        let running = match self.backend.list().await {
            Ok(vms) => vms.iter().filter(|v| v.status.state.is_active()).count() as u32,
            Err(_) => 0,
        };
        let request = usage.heartbeat(node_id, cpu, running);
        Ok(self.client.update_heartbeat(&request).await?)
    }

    /// A heartbeat acknowledged: published, and a failure streak ended.
    fn acknowledged(&mut self, answer: &compute::UpdateHeartbeatResponse) {
        tracing::debug!(
            server_time = answer.server_time_unix,
            "heartbeat acknowledged"
        );
        self.link.succeeded();
        self.status.send_modify(|s| {
            s.registered = true;
            s.last_heartbeat = Some(SystemTime::now());
            s.last_error = None;
        });
        let unknown: Vec<&String> = answer
            .assigned_pool_ids
            .iter()
            .filter(|id| self.pools.get(id.as_str()).is_none())
            .collect();
        if !unknown.is_empty() {
            tracing::debug!(pools = ?unknown, "the control plane assigns pools this node does not hold");
        }
    }

    /// The host and the pools now, and the CPU usage since the last reading.
    async fn host_usage(&mut self) -> Result<(HostUsage, f64), AgentError> {
        let (pools, state_dir) = (self.pools.all(), self.state_dir.clone());
        let usage =
            tokio::task::spawn_blocking(move || HostUsage::read(&pools, &state_dir)).await?;
        let cpu = usage.cpu_times.map_or(0.0, |t| self.cpu.update(t));
        Ok((usage, cpu))
    }

    /// A failure: published, and logged without flooding.
    fn failed(&mut self, error: &AgentError) {
        let message = error.to_string();
        self.status.send_modify(|s| {
            s.last_error = Some(message.clone());
            s.last_error_at = Some(SystemTime::now());
        });
        self.link.failed(&message);
    }
}
