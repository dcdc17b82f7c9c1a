//! Serving: the listeners (Unix sockets with mode 0660; TCP with TLS, optionally mTLS; plaintext
//! TCP for the LimiQuantix control plane, only from the allow-list), the gRPC health service,
//! server reflection (so `grpcurl` works without the `.proto`), and a graceful shutdown that
//! ends the streams, drains in-flight calls and leaves the VMs running.

use crate::accept::AllowListed;
use crate::config::{Cidr, Config, ListenAddr, describe_allow_list};
use crate::error::map_oversized_request;
use crate::service::NodeService;
use limiquantix_proto::v1::node_daemon_service_server::NodeDaemonServiceServer;
use limiquantix_vm::VmBackend;
use std::future::Future;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Server, ServerTlsConfig};

/// One listener's server future.
type Serving = std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;

/// How long shutdown waits for in-flight calls before leaving anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server could not start or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A directory could not be created.
    #[error("cannot create {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A listener could not be set up.
    #[error("cannot listen on {addr}: {problem}")]
    Listen {
        /// The listener.
        addr: String,
        /// What went wrong.
        problem: String,
    },
    /// TLS files could not be read or used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The transport failed while serving.
    #[error("serving {addr} failed: {source}")]
    Serve {
        /// The listener.
        addr: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
}

/// Creates the state, VM, images and run directories the daemon uses.
pub fn create_dirs(config: &Config) -> Result<(), ServerError> {
    use std::os::unix::fs::DirBuilderExt as _;
    // New directories are private to the daemon's user (VM disks, seeds and sockets live in
    // them); existing ones keep the modes an operator or the package gave them.
    for (dir, mode) in [
        (&config.state_dir, 0o750),
        (&config.vms_dir(), 0o700),
        (&config.images_dir, 0o750),
        (&config.run_dir, 0o750),
    ] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .map_err(|source| ServerError::CreateDir {
                path: dir.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Binds a Unix socket at `path` with mode 0660. A stale socket file (nothing answers on it)
/// is replaced; a live one means another daemon runs, and is an error.
pub fn bind_unix(path: &Path) -> Result<UnixListener, ServerError> {
    let err = |problem: String| ServerError::Listen {
        addr: format!("unix:{}", path.display()),
        problem,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt as _;
        if !meta.file_type().is_socket() {
            return Err(err("the path exists and is not a socket".into()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err(
                "another process is listening there (is limiquantix-node already running?)".into(),
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| err(format!("cannot remove the stale socket: {e}")))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| err(e.to_string()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| err(format!("cannot set mode 0660: {e}")))?;
    Ok(listener)
}

/// The TLS settings of the tcp: listeners; the files are checked here, at start, so an unusable
/// certificate or key stops the daemon with what is wrong with it.
fn tls_config(config: &Config) -> Result<ServerTlsConfig, ServerError> {
    let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) else {
        return Err(ServerError::Tls(
            "a tcp: listener needs both a certificate and a key".into(),
        ));
    };
    let tls_error = |e: limiquantix_proto::tls::TlsFileError| ServerError::Tls(e.to_string());
    let mut tls = ServerTlsConfig::new()
        .identity(limiquantix_proto::tls::load_identity(cert, key).map_err(tls_error)?);
    if let Some(ca) = &config.tls.client_ca {
        tls = tls.client_ca_root(limiquantix_proto::tls::load_ca(ca).map_err(tls_error)?);
    }
    Ok(tls)
}

/// The routes every listener serves: the node API, health and reflection.
async fn routes<B: VmBackend>(service: NodeService<B>, max_request_bytes: usize) -> Routes {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<NodeDaemonServiceServer<NodeService<B>>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(limiquantix_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(limiquantix_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid");
    let api = NodeDaemonServiceServer::new(service).max_decoding_message_size(max_request_bytes);
    Routes::new(api)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
}

/// Serves `service` on every configured listener until `shutdown` resolves, then stops
/// accepting, ends the event streams, and waits (up to 10 s) for in-flight calls. VMs keep
/// running: nothing here stops them.
pub async fn serve<B: VmBackend>(
    config: &Config,
    service: NodeService<B>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let shutdown_tx = service.shutdown_switch();
    warn_if_unreachable_by_control_plane(config);
    // The image library (NodeImageService) beside the node API; DeleteImage asks the backend
    // which images VMs use.
    let images = crate::images::ImageLibrary::open(&config.images_dir).map_err(|e| {
        ServerError::CreateDir {
            path: config.images_dir.clone(),
            source: std::io::Error::other(e.to_string()),
        }
    })?;
    let in_use = crate::image_service::in_use_from(service.backend().clone());
    // The serial console (NodeConsoleService): sessions end with the other streams at shutdown.
    let console = crate::console::server(service.backend().clone(), shutdown_tx.clone());
    let api = crate::metrics::api::ApiMetrics::default();
    if let Some(addr) = config.metrics_listen {
        let mut rx = shutdown_tx.subscribe();
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let backend = service.backend().clone();
        crate::metrics::exporter::spawn(addr, backend, api.clone(), stop)
            .await
            .map_err(|e| ServerError::Listen {
                addr: format!("metrics {addr}"),
                problem: e.to_string(),
            })?;
    }
    let http_face = crate::http::start(config, service.clone(), shutdown_tx.clone())
        .await
        .map_err(|e| ServerError::Listen {
            addr: "http".into(),
            problem: e.to_string(),
        })?;
    let routes = routes(service, config.max_request_bytes)
        .await
        .add_service(crate::image_service::server(images, in_use))
        .add_service(console)
        .add_service(crate::http::admin::server(http_face));
    let mut servers = tokio::task::JoinSet::new();
    let mut sockets = Vec::new();
    for addr in &config.listen {
        let mut rx = shutdown_tx.subscribe();
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let name = addr.to_string();
        let serving = listen(config, addr, routes.clone(), stop, &api).await?;
        if let ListenAddr::Unix(path) = addr {
            sockets.push(path.clone());
        }
        servers.spawn(async move {
            serving
                .await
                .map_err(|source| ServerError::Serve { addr: name, source })
        });
        tracing::info!(listen = %addr, "listening");
    }

    let mut first_error = None;
    tokio::select! {
        () = shutdown => tracing::info!("shutting down: no new calls; VMs keep running"),
        Some(result) = servers.join_next() => {
            if let Ok(Err(e)) = result {
                first_error = Some(e);
            }
        }
    }
    let _ = shutdown_tx.send(true);
    drain(servers).await;
    for path in sockets {
        let _ = std::fs::remove_file(&path);
    }
    first_error.map_or(Ok(()), Err)
}

/// Binds one listener and serves `routes` on it until `stop` resolves.
async fn listen(
    config: &Config,
    addr: &ListenAddr,
    routes: Routes,
    stop: impl Future<Output = ()> + Send + 'static,
    api: &crate::metrics::api::ApiMetrics,
) -> Result<Serving, ServerError> {
    let name = addr.to_string();
    let builder = Server::builder()
        .layer(crate::metrics::api::ApiMetricsLayer(api.clone()))
        .layer(crate::deadline::DeadlineLayer)
        .layer(tower::util::MapResponseLayer::new(
            map_oversized_request::<tonic::body::Body>,
        ));
    Ok(match addr {
        ListenAddr::Unix(path) => {
            let incoming = UnixListenerStream::new(bind_unix(path)?);
            let mut b = builder;
            Box::pin(
                b.add_routes(routes)
                    .serve_with_incoming_shutdown(incoming, stop),
            )
        }
        ListenAddr::Tcp(hostport) => {
            let incoming = bind_tcp(&name, hostport).await?;
            let mut b = builder
                .tls_config(tls_config(config)?)
                .map_err(|e| ServerError::Tls(e.to_string()))?;
            Box::pin(
                b.add_routes(routes)
                    .serve_with_incoming_shutdown(incoming, stop),
            )
        }
        ListenAddr::Plaintext(hostport) => {
            let incoming = bind_tcp(&name, hostport).await?;
            warn_plaintext(hostport, &config.allow_from);
            let allowed = AllowListed::new(incoming, config.allow_from.clone().into(), name);
            let mut b = builder;
            Box::pin(
                b.add_routes(routes)
                    .serve_with_incoming_shutdown(allowed, stop),
            )
        }
    })
}

/// Binds a TCP listener at `hostport` (an IP address and a port).
async fn bind_tcp(name: &str, hostport: &str) -> Result<TcpIncoming, ServerError> {
    let listen_error = |problem: String| ServerError::Listen {
        addr: name.into(),
        problem,
    };
    let sockaddr: std::net::SocketAddr =
        hostport.parse().map_err(|e| listen_error(format!("{e}")))?;
    let listener = tokio::net::TcpListener::bind(sockaddr)
        .await
        .map_err(|e| listen_error(e.to_string()))?;
    Ok(TcpIncoming::from(listener))
}

/// Says loudly, at start, what a plaintext listener exposes and to whom.
fn warn_plaintext(hostport: &str, allow_from: &[Cidr]) {
    tracing::warn!(
        listen = %hostport,
        allow_from = %describe_allow_list(allow_from),
        "PLAINTEXT gRPC listener: unauthenticated and unencrypted; whoever connects from an \
         allowed address controls this host's VMs, and anyone on the path can read and change \
         the traffic. Connections from other addresses are closed at accept time"
    );
    if allow_from.iter().any(Cidr::is_everything) {
        tracing::warn!(
            allow_from = %describe_allow_list(allow_from),
            "the allow-list of the plaintext listener admits every address of a family (/0)"
        );
    }
}

/// The control plane registers this node as `<management IP>:9090` and dials that with plaintext
/// gRPC: without a `plaintext+tcp:` listener on port 9090 it cannot manage the node's VMs.
fn warn_if_unreachable_by_control_plane(config: &Config) {
    let dialed = config.listen.iter().any(|l| {
        matches!(l, ListenAddr::Plaintext(a)
            if a.parse::<std::net::SocketAddr>().is_ok_and(|a| a.port() == 9090))
    });
    if config.control_plane.is_some() && !dialed {
        tracing::warn!(
            "a control plane is configured but no plaintext+tcp: listener is on port 9090, where \
             it dials nodes: it will register this node and fail to reach it \
             (add --listen plaintext+tcp:<management IP>:9090)"
        );
    }
}

/// Waits up to [`DRAIN_TIMEOUT`] for the listeners' in-flight calls to finish.
async fn drain(mut servers: tokio::task::JoinSet<Result<(), ServerError>>) {
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while let Some(result) = servers.join_next().await {
            if let Ok(Err(e)) = result {
                tracing::warn!(error = %e, "listener ended with an error");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("in-flight calls did not finish within {DRAIN_TIMEOUT:?}; leaving anyway");
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the daemon with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unix_socket_mode_and_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        let l = bind_unix(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let err = bind_unix(&path).unwrap_err().to_string();
        assert!(err.contains("already running"), "{err}");
        drop(l);
        bind_unix(&path).expect("a stale socket is replaced");
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        assert!(bind_unix(&dir.path().join("file")).is_err());
    }
}
