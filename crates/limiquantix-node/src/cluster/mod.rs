//! Joining a LimiQuantix control plane: the node registers, reports what it holds, and sends
//! heartbeats, as the upstream node agent does.
//!
//! The control plane's API for nodes is Connect-RPC, unary JSON over HTTP/1.1 ([`connect`]).
//! Started from `main.rs` after the service is built ([`spawn`]), in the background, so the
//! daemon serves VMs whatever the control plane does:
//!
//! 1. **RegisterNode** with the host name, the management IPv4 address with `:9090` appended
//!    (the route's local address to the control plane, or `[control_plane] management_ip`),
//!    the compute role and the host's CPU, memory, disks and NICs ([`facts`]). Retried with
//!    backoff (1 s doubling to 60 s, with jitter) until it succeeds. The id it answers is saved
//!    in the state directory ([`identity`]).
//! 2. **SyncNodeVMs** (every VM: id, name, state, vCPUs, memory, disk files), **ScanLocalImages**
//!    (the image library and the pools' images) and **SyncFullState** once, unless the control
//!    plane answered `unimplemented` to it before ([`inventory`]). Failures here are logged,
//!    never fatal.
//! 3. **UpdateHeartbeat** at once and then every `heartbeat_interval`: CPU usage, memory, load
//!    and every pool of the configuration with its health and capacity ([`usage`]). A heartbeat
//!    answered `not_found` (the control plane does not know the id) goes back to step 1.
//!
//! How it stands ([`ClusterStatus`]) is shared with GetNodeInfo through a `watch` channel.
//! Failures are logged when a streak starts and then at most once a minute.

mod agent;
pub mod backoff;
pub mod connect;
pub mod facts;
pub mod identity;
pub mod inventory;
mod status;
pub mod usage;

use crate::config::{Config, ControlPlane};
use crate::pools::PoolRegistry;
use limiquantix_vm::VmBackend;
use std::sync::Arc;
use tokio::sync::watch;

pub use connect::{Code, ConnectClient, ConnectError};
pub use status::{ClusterError, ClusterStatus};

/// Starts registering with the control plane and sending heartbeats, in the background (call
/// inside a tokio runtime; never blocks). Returns the status the task keeps up to date.
pub fn spawn<B: VmBackend>(
    settings: ControlPlane,
    config: &Config,
    backend: Arc<B>,
    pools: Arc<PoolRegistry>,
) -> Result<watch::Receiver<ClusterStatus>, ClusterError> {
    let client = ConnectClient::new(&settings.url)?;
    let (status, receiver) = watch::channel(ClusterStatus {
        url: settings.url.clone(),
        ..Default::default()
    });
    let agent = agent::Agent::new(client, settings, config, backend, pools, status);
    tokio::spawn(agent.run());
    Ok(receiver)
}
