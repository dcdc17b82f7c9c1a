//! The connection to the daemon: a gRPC channel over its Unix socket, or over TCP with TLS, and
//! the translation of failures into one-line messages that say what to do.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use limiquantix_proto::tls::{load_ca, load_identity};
use limiquantix_proto::v1::node_console_service_client::NodeConsoleServiceClient;
use limiquantix_proto::v1::node_daemon_service_client::NodeDaemonServiceClient;
use limiquantix_proto::v1::node_image_service_client::NodeImageServiceClient;
use tonic::Code;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// Where the daemon listens by default.
pub const DEFAULT_SOCKET: &str = "/run/limiquantix/limiquantix-node.sock";

/// Largest message accepted from the daemon (log tails and VM lists stay far below it).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// How to reach the daemon.
#[derive(Clone, Debug, Default)]
pub struct Target {
    /// A socket path, `unix:PATH`, or `https://HOST:PORT` (also `tcp:HOST:PORT`).
    pub address: String,
    /// CA certificate (PEM) that signed the daemon's certificate.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS.
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM) for mTLS.
    pub tls_key: Option<PathBuf>,
}

/// A connected daemon.
#[derive(Clone, Debug)]
pub struct Daemon {
    channel: Channel,
    address: String,
}

impl Daemon {
    /// Connects, failing with a message that says what to check.
    pub async fn connect(target: &Target) -> anyhow::Result<Self> {
        let address = target.address.clone();
        let endpoint = match tcp_host_port(&address) {
            Some(host_port) => tls_endpoint(target, host_port)?,
            None => {
                let path = address
                    .strip_prefix("unix://")
                    .or_else(|| address.strip_prefix("unix:"))
                    .unwrap_or(&address);
                Endpoint::from_shared(format!("unix:{path}"))
                    .map_err(|_| anyhow!("invalid daemon address {address:?}"))?
            }
        };
        let channel = endpoint
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| unreachable_error(&address, &e))?;
        Ok(Daemon { channel, address })
    }

    /// The address as given.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A client of `NodeDaemonService`.
    pub fn node(&self) -> NodeDaemonServiceClient<Channel> {
        NodeDaemonServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE)
    }

    /// A client of `NodeImageService`.
    pub fn images(&self) -> NodeImageServiceClient<Channel> {
        NodeImageServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE)
    }

    /// The channel, for the clients of the other services (`NodeHttpService`).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A client of `NodeConsoleService` (the interactive serial console).
    pub fn console(&self) -> NodeConsoleServiceClient<Channel> {
        NodeConsoleServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE)
    }

    /// Turns a failed call into a one-line error.
    pub fn error(&self, status: &tonic::Status) -> anyhow::Error {
        let msg = status.message().trim();
        let msg = if msg.is_empty() {
            format!("{:?}", status.code())
        } else {
            msg.replace('\n', " ")
        };
        if std::error::Error::source(status).is_some() {
            // A status with an underlying error was made by the client's transport: the call
            // never reached the service. Say what the transport said.
            let cause = innermost(status).unwrap_or(msg);
            let hint = if self.address.starts_with("https://") || self.address.starts_with("tcp:") {
                " (check --tls-ca, and --tls-cert/--tls-key if the daemon requires client certificates)"
            } else {
                ""
            };
            return anyhow!(
                "cannot talk to the daemon at {}: {cause}{hint}",
                self.address
            );
        }
        match status.code() {
            Code::Unavailable if msg.contains("connect") || msg.contains("transport") => anyhow!(
                "cannot reach the daemon at {}: is limiquantix-node running?",
                self.address
            ),
            Code::Unavailable => anyhow!("the daemon is unavailable: {msg}"),
            Code::Unimplemented => anyhow!("the daemon does not support this yet: {msg}"),
            Code::DeadlineExceeded => anyhow!("the daemon did not answer in time: {msg}"),
            _ => anyhow!("{msg}"),
        }
    }
}

/// Adds the daemon's one-line error to a call's result.
pub trait CallExt<T> {
    /// Maps a `Status` into the error [`Daemon::error`] describes.
    fn or_fail(self, daemon: &Daemon) -> anyhow::Result<T>;
}

impl<T> CallExt<T> for Result<tonic::Response<T>, tonic::Status> {
    fn or_fail(self, daemon: &Daemon) -> anyhow::Result<T> {
        self.map(tonic::Response::into_inner)
            .map_err(|s| daemon.error(&s))
    }
}

fn tcp_host_port(address: &str) -> Option<&str> {
    address
        .strip_prefix("https://")
        .or_else(|| address.strip_prefix("tcp:"))
        .map(|s| s.trim_end_matches('/'))
}

fn tls_endpoint(target: &Target, host_port: &str) -> anyhow::Result<Endpoint> {
    let address = &target.address;
    let host = host_port
        .rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .ok_or_else(|| anyhow!("daemon address {address:?} has no port: use https://HOST:PORT"))?;
    let ca = target.tls_ca.as_ref().ok_or_else(|| {
        anyhow!("{address} is a TLS address: pass --tls-ca with the CA that signed the daemon's certificate")
    })?;
    // The files are checked here so an unusable one is named with what is wrong with it.
    let mut tls = ClientTlsConfig::new()
        .domain_name(host)
        .ca_certificate(load_ca(ca).map_err(|e| anyhow!("--tls-ca: {e}"))?);
    match (&target.tls_cert, &target.tls_key) {
        (Some(cert), Some(key)) => {
            let identity =
                load_identity(cert, key).map_err(|e| anyhow!("--tls-cert/--tls-key: {e}"))?;
            tls = tls.identity(identity);
        }
        (None, None) => {}
        _ => anyhow::bail!("--tls-cert and --tls-key go together (mTLS needs both)"),
    }
    Endpoint::from_shared(format!("https://{host_port}"))
        .map_err(|_| anyhow!("invalid daemon address {address:?}"))?
        .tls_config(tls)
        .map_err(|e| {
            anyhow!(
                "invalid TLS settings for {address}: {}",
                innermost_error(&e)
            )
        })
}

/// The message of the innermost error under `error` (tonic's own message is "transport error").
fn innermost_error(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(source) = last.source() {
        last = source;
    }
    last.to_string()
}

/// The message of the innermost error under a status, if any.
fn innermost(status: &tonic::Status) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    let mut last = None;
    while let Some(e) = cause {
        last = Some(e.to_string());
        cause = e.source();
    }
    last
}

/// Explains a failed connection from the innermost OS error.
fn unreachable_error(address: &str, error: &(dyn std::error::Error + 'static)) -> anyhow::Error {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut io = None;
    let mut last = error.to_string();
    while let Some(e) = cause {
        if let Some(e) = e.downcast_ref::<std::io::Error>() {
            io = Some(e.kind());
        }
        last = e.to_string();
        cause = e.source();
    }
    match io {
        Some(std::io::ErrorKind::PermissionDenied) => anyhow!(
            "cannot reach the daemon at {address}: permission denied (run as root, or as a member of the socket's group)"
        ),
        Some(std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) | None
            if !address.starts_with("https://") && !address.starts_with("tcp:") =>
        {
            anyhow!("cannot reach the daemon at {address}: is limiquantix-node running?")
        }
        _ => anyhow!("cannot reach the daemon at {address}: {last}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(address: &str) -> Daemon {
        Daemon {
            channel: Endpoint::from_static("http://[::1]:9").connect_lazy(),
            address: address.to_owned(),
        }
    }

    #[tokio::test]
    async fn statuses_become_one_line_messages() {
        let d = daemon("/run/x.sock");
        let e = d.error(&tonic::Status::not_found("VM 1 does not exist"));
        assert_eq!(e.to_string(), "VM 1 does not exist");
        let e = d.error(&tonic::Status::invalid_argument(
            "spec.memory_mib: 0 is too small\nuse 64+",
        ));
        assert_eq!(e.to_string(), "spec.memory_mib: 0 is too small use 64+");
        let e = d.error(&tonic::Status::unimplemented("AttachNIC waits for issue 9"));
        assert!(
            e.to_string()
                .starts_with("the daemon does not support this yet: ")
        );
        let e = d.error(&tonic::Status::unavailable(
            "error trying to connect: No such file",
        ));
        assert_eq!(
            e.to_string(),
            "cannot reach the daemon at /run/x.sock: is limiquantix-node running?"
        );
    }

    #[tokio::test]
    async fn unreachable_sockets_say_what_to_check() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.sock").display().to_string();
        let err = Daemon::connect(&Target {
            address: missing.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot reach the daemon at {missing}: is limiquantix-node running?")
        );
        let err = Daemon::connect(&Target {
            address: "https://127.0.0.1:1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("pass --tls-ca"), "{err}");
        let err = Daemon::connect(&Target {
            address: "https://127.0.0.1:1".into(),
            tls_ca: Some(dir.path().join("ca.pem")),
            tls_cert: Some(dir.path().join("c.pem")),
            ..Default::default()
        })
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("cannot read the CA certificate"),
            "{err}"
        );
    }
}
