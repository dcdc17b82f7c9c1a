//! The node's HTTP face for the LimiQuantix control plane (off unless configured): Add Host
//! (`/api/v1/registration/{ping,token,discovery}`), the VM tabs it proxies
//! (`/api/v1/vms/{id}/…`) and cloud-image downloads (`/api/v1/images/download[/{jobId}]`) on
//! HTTPS (`[http] listen`, port 8443 for the control plane), and the download pair alone on
//! plain HTTP (`[http] image_listen`, port 8080). Both take connections from the allow-list
//! only. Every handler is a thin adapter over the gRPC service, the image library's download
//! jobs, the pool registry or the host facts collector: no logic of its own beyond the shapes.
//!
//! Every request: a body of at most [`MAX_BODY`] bytes and at most [`REQUEST_TIMEOUT`]; at most
//! [`guard::MAX_CONNECTIONS`] connections per listener, each closed when idle; logs
//! carry no token, body, command output or file content.

pub mod admin;
pub mod cert;
pub mod discovery;
pub mod downloads;
pub mod guard;
mod images;
pub mod listen;
pub mod listing;
mod record;
mod registration;
pub mod reply;
pub mod state;
pub mod tokens;
mod vms;

use crate::config::Config;
use crate::service::NodeService;
use axum::Router;
use axum::routing::{get, post};
use limiquantix_proto::v1 as pb;
use limiquantix_vm::VmBackend;
use state::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Largest request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Longest a request may take (a guest command may take up to 300 s; the control plane's own
/// client gives up after 30 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(320);

/// Why the HTTP face cannot start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The certificate.
    #[error(transparent)]
    Cert(#[from] cert::CertError),
    /// A listener.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

async fn time_limit(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => reply::error(tonic::Code::DeadlineExceeded, "the request took too long"),
    }
}

fn limits<S: Clone + Send + Sync + 'static>(r: Router<S>) -> Router<S> {
    r.layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(time_limit))
}

/// The download pair.
fn image_routes<B: VmBackend>() -> Router<Arc<Shared<B>>> {
    Router::new()
        .route("/api/v1/images/download", post(images::start::<B>))
        .route("/api/v1/images/download/{job_id}", get(images::status::<B>))
}

/// Every route of the HTTPS listener.
fn https_routes<B: VmBackend>() -> Router<Arc<Shared<B>>> {
    image_routes::<B>()
        .route("/api/v1/registration/ping", get(registration::ping::<B>))
        .route("/api/v1/registration/token", get(registration::token::<B>))
        .route(
            "/api/v1/registration/discovery",
            get(registration::discovery::<B>),
        )
        .route("/api/v1/vms/{id}/logs", get(vms::logs::<B>))
        .route(
            "/api/v1/vms/{id}/qemu-agent/ping",
            get(vms::agent_ping::<B>),
        )
        .route("/api/v1/vms/{id}/execute", post(vms::execute::<B>))
        .route(
            "/api/v1/vms/{id}/agent/files/list",
            get(vms::files_list::<B>),
        )
        .route(
            "/api/v1/vms/{id}/agent/files/read",
            get(vms::files_read::<B>),
        )
}

async fn not_found() -> axum::response::Response {
    reply::error(tonic::Code::NotFound, "no such endpoint on this node")
}

/// Starts the configured HTTP listeners (none when the configuration has none) and returns the
/// operator's gRPC side of them. They stop when `stop` turns true.
pub async fn start<B: VmBackend>(
    config: &Config,
    service: NodeService<B>,
    stop: watch::Sender<bool>,
) -> Result<admin::HttpAdmin, HttpError> {
    let state_dir = config.state_dir.clone();
    let tokens = Arc::new(
        tokio::task::spawn_blocking(move || tokens::TokenStore::open(&state_dir))
            .await
            .unwrap_or_else(|_| tokens::TokenStore::open(std::path::Path::new("/nonexistent"))),
    );
    let mut info = pb::HttpInfo::default();
    if !config.http.enabled() {
        return Ok(admin::HttpAdmin { tokens, info });
    }
    let cert = match config.http.listen {
        Some(addr) => Some(load_cert(config, addr).await?),
        None => None,
    };
    let downloads = downloads::HttpDownloads::open(&config.state_dir, service.pools()).await;
    let shared = Arc::new(Shared {
        service,
        tokens: tokens.clone(),
        downloads,
        https: config.http.listen,
        cert: cert.clone(),
    });
    let allow: Arc<[crate::config::Cidr]> = config.allow_from.clone().into();
    let stopped = move || {
        let mut rx = stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    if let (Some(addr), Some(cert)) = (config.http.listen, &cert) {
        let name = format!("https {addr}");
        let l = listen::TlsListener::bind(addr, allow.clone(), name, cert.tls.clone())
            .await
            .map_err(|source| HttpError::Listen { addr, source })?;
        let app = limits(https_routes::<B>())
            .fallback(not_found)
            .with_state(shared.clone());
        tokio::spawn(
            axum::serve(l, app)
                .with_graceful_shutdown(stopped())
                .into_future(),
        );
        tracing::info!(listen = %addr, fingerprint = %cert.fingerprint, "HTTPS face listening");
        info.https_listen = addr.to_string();
        info.cert_sha256_fingerprint = cert.fingerprint.clone();
        info.cert_path = cert.cert_path.display().to_string();
        info.self_signed = cert.self_signed;
    }
    if let Some(addr) = config.http.image_listen {
        let name = format!("http {addr}");
        let l = listen::PlainListener::bind(addr, allow, name)
            .await
            .map_err(|source| HttpError::Listen { addr, source })?;
        let app = limits(image_routes::<B>())
            .fallback(not_found)
            .with_state(shared);
        tokio::spawn(
            axum::serve(l, app)
                .with_graceful_shutdown(stopped())
                .into_future(),
        );
        tracing::info!(listen = %addr, "plain HTTP image downloads listening");
        info.image_http_listen = addr.to_string();
    }
    Ok(admin::HttpAdmin { tokens, info })
}

async fn load_cert(
    config: &Config,
    addr: std::net::SocketAddr,
) -> Result<cert::ServerCert, HttpError> {
    let state_dir = config.state_dir.clone();
    let files = config.http.cert.clone().zip(config.http.key.clone());
    let made = tokio::task::spawn_blocking(move || {
        let host = crate::hostinfo::uname().1;
        let operator = files.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
        cert::load_or_make(&state_dir, operator, &host, &[addr.ip()])
    })
    .await
    .map_err(|e| cert::CertError::Generate(e.to_string()))??;
    Ok(made)
}
