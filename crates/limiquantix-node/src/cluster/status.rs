//! How the node stands with its control plane, and why the client could not start.

use limiquantix_proto::v1 as pb;
use std::net::Ipv4Addr;
use std::time::SystemTime;

/// How the node stands with its control plane.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterStatus {
    /// The control plane's URL.
    pub url: String,
    /// Registered, and no heartbeat since answered `not_found`.
    pub registered: bool,
    /// The id the control plane assigned (saved across restarts); empty before the first one.
    pub node_id: String,
    /// The management address registered.
    pub management_ip: Option<Ipv4Addr>,
    /// When the control plane last acknowledged a heartbeat.
    pub last_heartbeat: Option<SystemTime>,
    /// The last failure; `None` after a success.
    pub last_error: Option<String>,
    /// When the last failure happened.
    pub last_error_at: Option<SystemTime>,
}

impl ClusterStatus {
    /// The GetNodeInfo extension message.
    pub fn to_proto(&self) -> pb::ControlPlaneStatus {
        pb::ControlPlaneStatus {
            url: self.url.clone(),
            registered: self.registered,
            node_id: self.node_id.clone(),
            management_ip: self
                .management_ip
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            last_heartbeat: self.last_heartbeat.map(Into::into),
            last_error: self.last_error.clone().unwrap_or_default(),
            last_error_at: self.last_error_at.map(Into::into),
        }
    }
}

/// Why the control-plane client could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The HTTP client could not be built (TLS roots, ...).
    #[error("cannot build the control plane's HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}
