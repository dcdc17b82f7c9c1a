//! Building the service: the registry of pools, the event forwarding, the download jobs.

use super::agent_cache::AgentCache;
use super::core::{Hypervisor, Inner, NodeService};
use super::{agent, events, network};
use crate::cluster::ClusterStatus;
use crate::config::Config;
use crate::images::HttpOptions;
use crate::images::jobs::{DownloadJobs, JobLimits};
use crate::pools::PoolRegistry;
use limiquantix_vm::VmBackend;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::{broadcast, watch};

impl<B: VmBackend> NodeService<B> {
    /// A service over `backend`. Spawns the task that forwards backend events to StreamEvents
    /// subscribers (call inside a tokio runtime).
    pub fn new(backend: Arc<B>, config: Config, hypervisor: Hypervisor) -> Self {
        let pools = Arc::new(PoolRegistry::open(
            &config.state_dir,
            &config.pools,
            vec![config.state_dir.join("pools")],
        ));
        let (events, _) = broadcast::channel(1024);
        events::forward(backend.subscribe(), events.clone());
        let agent_events = backend.subscribe();
        let downloads = DownloadJobs::new(
            &config.images_dir,
            HttpOptions::default(),
            JobLimits::default(),
        );
        let inner = Arc::new(Inner {
            backend,
            config,
            pools,
            hypervisor,
            started: Instant::now(),
            events,
            shutdown: watch::Sender::new(false),
            agents: AgentCache::default(),
            control_plane: OnceLock::new(),
            downloads,
            ovs_vsctl: network::OVS_VSCTL.into(),
            migrations: Default::default(),
        });
        agent::follow(agent_events, Arc::downgrade(&inner));
        Self { inner }
    }

    /// Shows the control-plane status `status` in GetNodeInfo (`control_plane`, and the
    /// registered management address). A second call is ignored.
    pub fn attach_control_plane(&self, status: watch::Receiver<ClusterStatus>) {
        if self.inner.control_plane.set(status).is_err() {
            tracing::warn!("a control-plane status is already attached");
        }
    }
}
