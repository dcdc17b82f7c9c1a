//! What every handler of the HTTP face shares.

use super::cert::ServerCert;
use super::downloads::HttpDownloads;
use super::tokens::TokenStore;
use crate::service::NodeService;
use std::net::SocketAddr;
use std::sync::Arc;

/// The HTTP face's shared state.
pub struct Shared<B> {
    /// The gRPC service, whose handlers the REST endpoints call.
    pub service: NodeService<B>,
    /// Registration tokens.
    pub tokens: Arc<TokenStore>,
    /// Image downloads.
    pub downloads: HttpDownloads,
    /// The HTTPS listener's address, when it listens.
    pub https: Option<SocketAddr>,
    /// The HTTPS certificate, when it listens.
    pub cert: Option<ServerCert>,
}
