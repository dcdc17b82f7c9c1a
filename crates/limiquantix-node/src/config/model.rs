//! The resolved configuration and its parts: listeners, log format, TLS files, errors, defaults.

use limiquantix_vm::accel::Accel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::allow::Cidr;
use super::control_plane::ControlPlane;

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/limiquantix";
/// Default run directory.
pub const DEFAULT_RUN_DIR: &str = "/run/limiquantix";
/// File name of the default Unix socket, inside the run directory.
pub const SOCKET_NAME: &str = "limiquantix-node.sock";
/// Default largest gRPC request the daemon decodes (16 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
/// Default time StopVM waits for the guest to power off.
pub const DEFAULT_STOP_TIMEOUT_SECS: u64 = 120;
/// The default interval of the metrics collector, in seconds.
pub const DEFAULT_METRICS_INTERVAL_SECS: u64 = 5;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown keys.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (line, column, what was expected).
        message: String,
    },
    /// A setting has a value that is not allowed.
    #[error("{source_name} {key}: {problem}")]
    Invalid {
        /// Where the value came from: "config file", "environment", "flag".
        source_name: &'static str,
        /// The key, flag or variable.
        key: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
}

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum ListenAddr {
    /// A Unix socket at this path (created with mode 0660).
    Unix(PathBuf),
    /// A TCP address `HOST:PORT`; only served with TLS.
    Tcp(String),
    /// A TCP address `HOST:PORT` served without TLS (`plaintext+tcp:HOST:PORT`), for the
    /// LimiQuantix control plane, which dials nodes with plaintext gRPC. Unauthenticated and
    /// unencrypted: connections from outside [`Config::allow_from`] are closed at accept time.
    Plaintext(String),
}

/// The scheme of a plaintext TCP listener.
pub const PLAINTEXT_SCHEME: &str = "plaintext+tcp:";

impl std::str::FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!(
                    "{s:?}: a unix socket path must be absolute (unix:/run/x.sock)"
                ));
            }
            return Ok(Self::Unix(path.into()));
        }
        if let Some(addr) = s.strip_prefix("tcp:") {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(format!(
                    "{s:?}: expected tcp:HOST:PORT with an IP address, e.g. tcp:0.0.0.0:7443 or tcp:[::1]:7443"
                ));
            }
            return Ok(Self::Tcp(addr.into()));
        }
        if let Some(addr) = s.strip_prefix(PLAINTEXT_SCHEME) {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(format!(
                    "{s:?}: expected plaintext+tcp:HOST:PORT with an IP address, e.g. plaintext+tcp:10.0.0.5:9090"
                ));
            }
            return Ok(Self::Plaintext(addr.into()));
        }
        Err(format!(
            "{s:?}: expected unix:PATH, tcp:HOST:PORT (TLS) or plaintext+tcp:HOST:PORT (no TLS)"
        ))
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tcp(a) => write!(f, "tcp:{a}"),
            Self::Plaintext(a) => write!(f, "{PLAINTEXT_SCHEME}{a}"),
        }
    }
}

impl From<ListenAddr> for String {
    fn from(a: ListenAddr) -> String {
        a.to_string()
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(format!("{s:?} is not a log format (allowed: text, json)")),
        }
    }
}

/// TLS files of the TCP listeners.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM server certificate (chain).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// PEM CA bundle; when set, clients must present a certificate it signed (mTLS).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// The resolved configuration the daemon runs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// VM definitions, disks and seeds live under `<state_dir>/vms`. Default `/var/lib/limiquantix`.
    pub state_dir: PathBuf,
    /// Sockets and pidfiles. Default `/run/limiquantix`.
    pub run_dir: PathBuf,
    /// Listeners. Default: `unix:<run_dir>/limiquantix-node.sock`.
    pub listen: Vec<ListenAddr>,
    /// Accelerator. Default `auto` (KVM when usable, else TCG).
    pub accel: Accel,
    /// Cloud images and ISOs; always an allowed source of backing files and ISOs.
    /// Default `<state_dir>/images`.
    pub images_dir: PathBuf,
    /// Storage pools: id → directory. Host paths a request names must be inside one of these or
    /// the images directory. Default: none.
    pub pools: BTreeMap<String, PathBuf>,
    /// Networks a control plane names: its network id → the host bridge NICs on it join.
    /// Default: none.
    pub networks: BTreeMap<String, String>,
    /// The bridge of NICs on a network the table does not name; `None`: user-mode NAT.
    pub default_network: Option<String>,
    /// TLS files for TCP listeners.
    pub tls: TlsFiles,
    /// Who may connect to the plaintext listeners; required when there is one, empty otherwise.
    pub allow_from: Vec<Cidr>,
    /// QEMU system emulator. Default `qemu-system-x86_64` (from `PATH`).
    pub qemu_binary: PathBuf,
    /// qemu-img. Default `qemu-img` (from `PATH`).
    pub qemu_img: PathBuf,
    /// Log format. Default `text`.
    pub log_format: LogFormat,
    /// StopVM's wait when the request gives none. Default 120 s.
    #[serde(with = "super::serde_secs")]
    pub stop_timeout: Duration,
    /// Largest gRPC request decoded; larger ones get RESOURCE_EXHAUSTED. Default 16 MiB.
    pub max_request_bytes: usize,
    /// The LimiQuantix control plane to register with (`[control_plane]`). Default: none, the
    /// node stays standalone.
    pub control_plane: Option<ControlPlane>,
    /// Where the Prometheus exporter serves `/metrics` (plaintext HTTP). Default: none (off).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How often every running VM's usage is sampled (at least 1 s). Default 5 s.
    #[serde(with = "super::serde_secs")]
    pub metrics_interval: Duration,
    /// The HTTP face (`[http]`). Default: off.
    pub http: super::http::HttpConfig,
    /// QEMUs starting at once (1 to 1024); more StartVMs queue until their deadline. Default 4.
    pub max_concurrent_starts: usize,
    /// CreateVMs creating disks at once (1 to 1024); more queue until their deadline.
    /// Default 8.
    pub max_concurrent_disk_creations: usize,
}

impl Config {
    /// The directory of one VM's persistent files.
    pub fn vms_dir(&self) -> PathBuf {
        self.state_dir.join("vms")
    }
}
