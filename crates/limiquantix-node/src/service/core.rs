//! The service's shared state: [`NodeService`] and what its handlers share.

use super::agent_cache::AgentCache;
use crate::cluster::ClusterStatus;
use crate::config::Config;
use crate::confine::Confinement;
use crate::images::jobs::DownloadJobs;
use crate::pools::PoolRegistry;
use limiquantix_proto::v1 as pb;
use limiquantix_vm::VmBackend;
use limiquantix_vm::accel::AccelKind;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::{broadcast, watch};
use tokio_stream::Stream;
use tonic::Status;

/// What the service knows about the host, gathered once at start-up.
#[derive(Debug, Clone)]
pub struct Hypervisor {
    /// QEMU's version (`None` when `qemu-system-x86_64 --version` did not run).
    pub qemu_version: Option<String>,
    /// The accelerator VMs get.
    pub accel: AccelKind,
    /// Why that accelerator (configured, `/dev/kvm` unusable, the KVM probe's outcome).
    pub accel_reason: String,
    /// How long the KVM probe guest took, when it ran to its end.
    pub probe_millis: Option<u32>,
}

/// The service's state, shared by its clones and its background tasks.
pub(super) struct Inner<B> {
    /// The VM backend.
    pub(super) backend: Arc<B>,
    /// The daemon's configuration.
    pub(super) config: Config,
    /// The storage pools (configured and made through the API).
    pub(super) pools: std::sync::Arc<PoolRegistry>,
    /// Host facts gathered at start-up.
    pub(super) hypervisor: Hypervisor,
    /// When the service started.
    pub(super) started: Instant,
    /// StreamEvents' channel.
    pub(super) events: broadcast::Sender<pb::NodeEvent>,
    /// Ends the streams at shutdown.
    pub(super) shutdown: watch::Sender<bool>,
    /// The guest agents' answers.
    pub(super) agents: AgentCache,
    /// How the node stands with its control plane, when one is configured.
    pub(super) control_plane: OnceLock<watch::Receiver<ClusterStatus>>,
    /// Image downloads running in the background (DownloadImage).
    pub(super) downloads: DownloadJobs,
    /// The Open vSwitch tool the network RPCs ask.
    pub(super) ovs_vsctl: PathBuf,
    /// The incoming migrations prepared here (PrepareMigration's tokens).
    pub(super) migrations: super::migration::IncomingTable,
}

/// The gRPC service. Cheap to clone.
pub struct NodeService<B> {
    pub(super) inner: Arc<Inner<B>>,
}

impl<B> Clone for NodeService<B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// A boxed stream of a server-streaming RPC.
pub(super) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl<B: VmBackend> NodeService<B> {
    /// The storage pools (the control-plane task reports them in its heartbeats).
    pub fn pools(&self) -> std::sync::Arc<PoolRegistry> {
        self.inner.pools.clone()
    }

    /// The switch that ends the service's streams (StreamEvents) for a graceful shutdown: send
    /// `true`.
    pub fn shutdown_switch(&self) -> watch::Sender<bool> {
        self.inner.shutdown.clone()
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<B> {
        &self.inner.backend
    }
}

impl<B> Inner<B> {
    /// Where host paths of requests may point now: the images directory and every pool
    /// (canonicalises the roots: blocking).
    pub(super) fn confinement(&self) -> Confinement {
        Confinement::new(&self.config.images_dir, self.pools.dirs().into_values())
    }

    /// Every pool's directory, by id.
    pub(super) fn pool_dirs(&self) -> BTreeMap<String, PathBuf> {
        self.pools.dirs()
    }
}

impl<B> Inner<B> {
    /// The node's management address, when it has one: the configured `management_ip`, else
    /// the one registered with the control plane. VNC displays the control plane proxies listen
    /// there (never on 0.0.0.0).
    pub(super) fn management_address(&self) -> Option<std::net::Ipv4Addr> {
        let configured = self
            .config
            .control_plane
            .as_ref()
            .and_then(|c| c.management_ip);
        configured.or_else(|| {
            self.control_plane
                .get()
                .and_then(|status| status.borrow().management_ip)
        })
    }
}
