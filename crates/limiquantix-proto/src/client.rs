//! Client constructors: a `NodeDaemonServiceClient` over the daemon's Unix socket, over TCP
//! with TLS (optionally presenting a client certificate for mTLS), or over a plaintext TCP
//! listener (`plaintext+tcp:`, the one the LimiQuantix control plane dials).

use crate::tls::{TlsFileError, load_ca, load_identity};
use crate::v1::node_daemon_service_client::NodeDaemonServiceClient;
use std::time::Duration;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// A connected client of the node daemon.
pub type NodeClient = NodeDaemonServiceClient<Channel>;

/// Largest response a client accepts (log tails and VM lists stay far below it).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Why a client could not be built or could not connect.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The target is not `unix:PATH`, an absolute socket path, or `tcp:HOST:PORT`.
    #[error(
        "invalid daemon address {target:?}: expected unix:PATH, an absolute socket path, or tcp:HOST:PORT"
    )]
    InvalidTarget {
        /// The address given.
        target: String,
    },
    /// A `tcp:` target was given to [`connect`], which speaks to Unix sockets only.
    #[error(
        "daemon address {target:?} is TCP: use connect_tls for a TLS listener, or connect_plaintext for a plaintext+tcp: listener"
    )]
    TcpNeedsTls {
        /// The address given.
        target: String,
    },
    /// A TLS file cannot be used (unreadable, not PEM, unsupported or encrypted key, a key that
    /// does not belong to its certificate).
    #[error(transparent)]
    TlsFile(#[from] TlsFileError),
    /// The transport failed (connection refused, TLS handshake, ...).
    #[error("cannot connect to the daemon at {target:?}: {}", innermost(.source))]
    Transport {
        /// The address given.
        target: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
}

/// TLS settings of a client connecting over TCP.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM file of the CA that signed the daemon's certificate.
    pub ca_cert: Option<std::path::PathBuf>,
    /// PEM certificate of this client, for mTLS.
    pub client_cert: Option<std::path::PathBuf>,
    /// PEM private key of this client, for mTLS.
    pub client_key: Option<std::path::PathBuf>,
    /// Name to check the daemon's certificate against; the target's host when `None`.
    pub domain: Option<String>,
}

/// The innermost cause under a transport error (tonic's own message is "transport error").
fn innermost(error: &tonic::transport::Error) -> String {
    let mut last: &(dyn std::error::Error + 'static) = error;
    while let Some(source) = last.source() {
        last = source;
    }
    last.to_string()
}

fn unix_path(target: &str) -> Option<&str> {
    target
        .strip_prefix("unix://")
        .or_else(|| target.strip_prefix("unix:"))
        .or_else(|| target.starts_with('/').then_some(target))
}

fn configure(client: NodeClient) -> NodeClient {
    client.max_decoding_message_size(MAX_RESPONSE_BYTES)
}

/// Connects to the daemon over its Unix socket: `target` is `unix:PATH` or an absolute path.
pub async fn connect(target: &str) -> Result<NodeClient, ClientError> {
    let Some(path) = unix_path(target) else {
        if target.starts_with("tcp:") {
            return Err(ClientError::TcpNeedsTls {
                target: target.into(),
            });
        }
        return Err(ClientError::InvalidTarget {
            target: target.into(),
        });
    };
    let channel = Endpoint::from_shared(format!("unix:{path}"))
        .map_err(|source| ClientError::Transport {
            target: target.into(),
            source,
        })?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|source| ClientError::Transport {
            target: target.into(),
            source,
        })?;
    Ok(configure(NodeDaemonServiceClient::new(channel)))
}

/// Connects to a daemon's plaintext TCP listener (`plaintext+tcp:` on the daemon's side, which
/// serves only the addresses of its allow-list): `target` is `tcp:HOST:PORT`. No encryption and
/// no authentication: meant for the LimiQuantix control plane's network and for tests.
pub async fn connect_plaintext(target: &str) -> Result<NodeClient, ClientError> {
    let Some(host_port) = target.strip_prefix("tcp:") else {
        return Err(ClientError::InvalidTarget {
            target: target.into(),
        });
    };
    let transport = |source| ClientError::Transport {
        target: target.into(),
        source,
    };
    let channel = Endpoint::from_shared(format!("http://{host_port}"))
        .map_err(transport)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(transport)?;
    Ok(configure(NodeDaemonServiceClient::new(channel)))
}

/// Connects to the daemon over TCP with TLS: `target` is `tcp:HOST:PORT`.
pub async fn connect_tls(target: &str, tls: &TlsOptions) -> Result<NodeClient, ClientError> {
    let Some(host_port) = target.strip_prefix("tcp:") else {
        return Err(ClientError::InvalidTarget {
            target: target.into(),
        });
    };
    let transport = |source| ClientError::Transport {
        target: target.into(),
        source,
    };
    let host = host_port
        .rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .ok_or_else(|| ClientError::InvalidTarget {
            target: target.into(),
        })?;
    let mut config = ClientTlsConfig::new().domain_name(tls.domain.clone().unwrap_or(host.into()));
    if let Some(ca) = &tls.ca_cert {
        config = config.ca_certificate(load_ca(ca)?);
    }
    if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
        config = config.identity(load_identity(cert, key)?);
    }
    let channel = Endpoint::from_shared(format!("https://{host_port}"))
        .map_err(transport)?
        .connect_timeout(Duration::from_secs(5))
        .tls_config(config)
        .map_err(transport)?
        .connect()
        .await
        .map_err(transport)?;
    Ok(configure(NodeDaemonServiceClient::new(channel)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_targets() {
        assert_eq!(unix_path("unix:/run/x.sock"), Some("/run/x.sock"));
        assert_eq!(unix_path("unix:///run/x.sock"), Some("/run/x.sock"));
        assert_eq!(unix_path("/run/x.sock"), Some("/run/x.sock"));
        assert_eq!(unix_path("tcp:127.0.0.1:1"), None);
    }

    #[tokio::test]
    async fn tcp_without_tls_is_refused() {
        let err = connect("tcp:127.0.0.1:7443").await.unwrap_err();
        assert!(matches!(err, ClientError::TcpNeedsTls { .. }), "{err}");
    }
}
