//! Daemon configuration: a TOML file, `LQ_*` environment variables and command-line flags.
//!
//! Each source yields a [`Layer`] (every setting optional); the layers are applied in the order
//! file < environment < flags, a later one replacing a setting (lists and the pool table are
//! replaced whole, not merged), and what is still unset takes the documented default
//! ([`Config::resolve`]). `packaging/limiquantix-node.toml` is the annotated example file.

use limiquantix_vm::accel::Accel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
}

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
        Err(format!("{s:?}: expected unix:PATH or tcp:HOST:PORT"))
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tcp(a) => write!(f, "tcp:{a}"),
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

/// One source's settings; everything optional. Also the schema of the TOML file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// `state_dir`: VM definitions, disks and seeds.
    pub state_dir: Option<PathBuf>,
    /// `run_dir`: sockets and pidfiles.
    pub run_dir: Option<PathBuf>,
    /// `listen`: listeners (`unix:PATH`, `tcp:HOST:PORT`).
    pub listen: Option<Vec<String>>,
    /// `accel`: `auto`, `kvm` or `tcg`.
    pub accel: Option<String>,
    /// `images_dir`: cloud images and ISOs.
    pub images_dir: Option<PathBuf>,
    /// `[pools]`: pool id = directory.
    pub pools: Option<BTreeMap<String, PathBuf>>,
    /// `[tls]`: certificate, key, client CA.
    pub tls: Option<TlsFiles>,
    /// `qemu_binary`: the QEMU system emulator.
    pub qemu_binary: Option<PathBuf>,
    /// `qemu_img`: the qemu-img tool.
    pub qemu_img: Option<PathBuf>,
    /// `log_format`: `text` or `json`.
    pub log_format: Option<String>,
    /// `stop_timeout_seconds`: StopVM's default wait.
    pub stop_timeout_seconds: Option<u64>,
    /// `max_request_bytes`: largest gRPC request decoded.
    pub max_request_bytes: Option<usize>,
}

impl Layer {
    /// Reads and parses a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.into(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// Reads the `LQ_*` variables out of `vars` (pass `std::env::vars()`). Lists are
    /// comma-separated: `LQ_LISTEN=unix:/a.sock,tcp:0.0.0.0:7443`, `LQ_POOLS=fast=/srv/a,b=/srv/b`.
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut layer = Layer::default();
        let mut tls = TlsFiles::default();
        let list = |v: &str| -> Vec<String> {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        let number = |key: &str, v: &str| {
            v.parse::<u64>().map_err(|_| ConfigError::Invalid {
                source_name: "environment",
                key: key.into(),
                problem: format!("{v:?} is not a non-negative integer"),
            })
        };
        for (key, value) in vars {
            match key.as_str() {
                "LQ_STATE_DIR" => layer.state_dir = Some(value.into()),
                "LQ_RUN_DIR" => layer.run_dir = Some(value.into()),
                "LQ_LISTEN" => layer.listen = Some(list(&value)),
                "LQ_ACCEL" => layer.accel = Some(value),
                "LQ_IMAGES_DIR" => layer.images_dir = Some(value.into()),
                "LQ_POOLS" => layer.pools = Some(parse_pools("environment", &key, &list(&value))?),
                "LQ_TLS_CERT" => tls.cert = Some(value.into()),
                "LQ_TLS_KEY" => tls.key = Some(value.into()),
                "LQ_TLS_CLIENT_CA" => tls.client_ca = Some(value.into()),
                "LQ_QEMU_BINARY" => layer.qemu_binary = Some(value.into()),
                "LQ_QEMU_IMG" => layer.qemu_img = Some(value.into()),
                "LQ_LOG_FORMAT" => layer.log_format = Some(value),
                "LQ_STOP_TIMEOUT_SECONDS" => {
                    layer.stop_timeout_seconds = Some(number(&key, &value)?)
                }
                "LQ_MAX_REQUEST_BYTES" => {
                    layer.max_request_bytes = Some(number(&key, &value)? as usize)
                }
                _ => {}
            }
        }
        if tls != TlsFiles::default() {
            layer.tls = Some(tls);
        }
        Ok(layer)
    }

    /// `self` with every setting `over` has replaced by `over`'s. TLS files merge field by field.
    pub fn overlay(mut self, over: Layer) -> Layer {
        macro_rules! take {
            ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f; } )* };
        }
        take!(
            state_dir,
            run_dir,
            listen,
            accel,
            images_dir,
            pools,
            qemu_binary,
            qemu_img,
            log_format,
            stop_timeout_seconds,
            max_request_bytes
        );
        if let Some(o) = over.tls {
            let mut t = self.tls.unwrap_or_default();
            t.cert = o.cert.or(t.cert);
            t.key = o.key.or(t.key);
            t.client_ca = o.client_ca.or(t.client_ca);
            self.tls = Some(t);
        }
        self
    }
}

/// Parses `ID=DIR` pool entries.
pub fn parse_pools(
    source_name: &'static str,
    key: &str,
    entries: &[String],
) -> Result<BTreeMap<String, PathBuf>, ConfigError> {
    let mut pools = BTreeMap::new();
    for entry in entries {
        let invalid = |problem: String| ConfigError::Invalid {
            source_name,
            key: key.into(),
            problem,
        };
        let (id, dir) = entry
            .split_once('=')
            .ok_or_else(|| invalid(format!("{entry:?}: expected ID=DIR")))?;
        if pools.insert(id.to_string(), PathBuf::from(dir)).is_some() {
            return Err(invalid(format!("pool {id:?} is given twice")));
        }
    }
    Ok(pools)
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
    /// TLS files for TCP listeners.
    pub tls: TlsFiles,
    /// QEMU system emulator. Default `qemu-system-x86_64` (from `PATH`).
    pub qemu_binary: PathBuf,
    /// qemu-img. Default `qemu-img` (from `PATH`).
    pub qemu_img: PathBuf,
    /// Log format. Default `text`.
    pub log_format: LogFormat,
    /// StopVM's wait when the request gives none. Default 120 s.
    #[serde(with = "secs")]
    pub stop_timeout: Duration,
    /// Largest gRPC request decoded; larger ones get RESOURCE_EXHAUSTED. Default 16 MiB.
    pub max_request_bytes: usize,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

impl Config {
    /// Applies `layers` in order (later wins), fills defaults, and checks the result.
    pub fn resolve(layers: &[(&'static str, Layer)]) -> Result<Config, ConfigError> {
        let mut merged = Layer::default();
        let mut origin: BTreeMap<&'static str, &'static str> = BTreeMap::new();
        for (name, layer) in layers {
            for (key, set) in [
                ("listen", layer.listen.is_some()),
                ("accel", layer.accel.is_some()),
                ("log_format", layer.log_format.is_some()),
                ("tls", layer.tls.is_some()),
            ] {
                if set {
                    origin.insert(key, name);
                }
            }
            merged = merged.overlay(layer.clone());
        }
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid {
            source_name: origin.get(key).copied().unwrap_or("config"),
            key: key.into(),
            problem,
        };

        let state_dir = merged.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into());
        let run_dir = merged.run_dir.unwrap_or_else(|| DEFAULT_RUN_DIR.into());
        for (key, dir) in [("state_dir", &state_dir), ("run_dir", &run_dir)] {
            if !dir.is_absolute() {
                return Err(ConfigError::Invalid {
                    source_name: "config",
                    key: key.into(),
                    problem: format!("{} is not an absolute path", dir.display()),
                });
            }
        }
        let listen = match merged.listen {
            Some(l) if !l.is_empty() => l
                .iter()
                .map(|s| s.parse::<ListenAddr>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|p| invalid("listen", p))?,
            _ => vec![ListenAddr::Unix(run_dir.join(SOCKET_NAME))],
        };
        let accel = match merged.accel {
            Some(a) => a.parse::<Accel>().map_err(|p| invalid("accel", p))?,
            None => Accel::Auto,
        };
        let log_format = match merged.log_format {
            Some(f) => f.parse().map_err(|p| invalid("log_format", p))?,
            None => LogFormat::Text,
        };
        let tls = merged.tls.unwrap_or_default();
        let has_tcp = listen.iter().any(|l| matches!(l, ListenAddr::Tcp(_)));
        if has_tcp && (tls.cert.is_none() || tls.key.is_none()) {
            return Err(invalid(
                "listen",
                "a tcp: listener is only served with TLS: set tls_cert and tls_key \
                 (--tls-cert/--tls-key, LQ_TLS_CERT/LQ_TLS_KEY or [tls] cert/key), \
                 or listen on unix:PATH"
                    .into(),
            ));
        }
        if !has_tcp && tls != TlsFiles::default() {
            return Err(invalid(
                "tls",
                "TLS files are set but no tcp: listener is configured".into(),
            ));
        }
        let pools = merged.pools.unwrap_or_default();
        for (id, dir) in &pools {
            let ok = !id.is_empty()
                && id.len() <= 63
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(ConfigError::Invalid {
                    source_name: "config",
                    key: "pools".into(),
                    problem: format!(
                        "pool id {id:?}: 1-63 characters of A-Z a-z 0-9 - _ are allowed"
                    ),
                });
            }
            if !dir.is_absolute() {
                return Err(ConfigError::Invalid {
                    source_name: "config",
                    key: format!("pools.{id}"),
                    problem: format!("{} is not an absolute path", dir.display()),
                });
            }
        }
        let max_request_bytes = merged
            .max_request_bytes
            .unwrap_or(DEFAULT_MAX_REQUEST_BYTES);
        if max_request_bytes < 64 * 1024 {
            return Err(ConfigError::Invalid {
                source_name: "config",
                key: "max_request_bytes".into(),
                problem: format!("{max_request_bytes} is below the minimum of 65536"),
            });
        }
        Ok(Config {
            images_dir: merged
                .images_dir
                .unwrap_or_else(|| state_dir.join("images")),
            state_dir,
            run_dir,
            listen,
            accel,
            pools,
            tls,
            qemu_binary: merged
                .qemu_binary
                .unwrap_or_else(|| "qemu-system-x86_64".into()),
            qemu_img: merged.qemu_img.unwrap_or_else(|| "qemu-img".into()),
            log_format,
            stop_timeout: Duration::from_secs(
                merged
                    .stop_timeout_seconds
                    .unwrap_or(DEFAULT_STOP_TIMEOUT_SECS),
            ),
            max_request_bytes,
        })
    }

    /// The directory of one VM's persistent files.
    pub fn vms_dir(&self) -> PathBuf {
        self.state_dir.join("vms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
state_dir = "/srv/lq/state"
run_dir = "/srv/lq/run"
listen = ["unix:/srv/lq/run/api.sock"]
accel = "tcg"
images_dir = "/srv/lq/images"
log_format = "json"
stop_timeout_seconds = 30
max_request_bytes = 1048576

[pools]
fast = "/srv/pools/fast"
"#;

    fn env(pairs: &[(&str, &str)]) -> Layer {
        Layer::from_env(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = Config::resolve(&[]).unwrap();
        assert_eq!(c.state_dir, Path::new("/var/lib/limiquantix"));
        assert_eq!(c.run_dir, Path::new("/run/limiquantix"));
        assert_eq!(
            c.listen,
            vec![ListenAddr::Unix(
                "/run/limiquantix/limiquantix-node.sock".into()
            )]
        );
        assert_eq!(c.images_dir, Path::new("/var/lib/limiquantix/images"));
        assert_eq!(c.accel, Accel::Auto);
        assert!(c.pools.is_empty());
        assert_eq!(c.stop_timeout, Duration::from_secs(120));
        assert_eq!(c.max_request_bytes, 16 << 20);
    }

    #[test]
    fn the_example_file_documents_the_defaults() {
        let example = include_str!("../../../packaging/limiquantix-node.toml");
        let file = Layer::from_toml(example).unwrap();
        assert_eq!(
            Config::resolve(&[("config file", file)]).unwrap(),
            Config::resolve(&[]).unwrap()
        );
    }

    #[test]
    fn file_values_are_honoured() {
        let file = Layer::from_toml(FILE).unwrap();
        let c = Config::resolve(&[("config file", file)]).unwrap();
        assert_eq!(c.state_dir, Path::new("/srv/lq/state"));
        assert_eq!(c.run_dir, Path::new("/srv/lq/run"));
        assert_eq!(
            c.listen,
            vec![ListenAddr::Unix("/srv/lq/run/api.sock".into())]
        );
        assert_eq!(c.accel, Accel::Tcg);
        assert_eq!(c.images_dir, Path::new("/srv/lq/images"));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.pools["fast"], Path::new("/srv/pools/fast"));
        assert_eq!(c.stop_timeout, Duration::from_secs(30));
        assert_eq!(c.max_request_bytes, 1 << 20);
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let file = Layer::from_toml(FILE).unwrap();
        let env = env(&[
            ("LQ_STATE_DIR", "/env/state"),
            ("LQ_ACCEL", "kvm"),
            ("LQ_POOLS", "a=/env/a, b=/env/b"),
            ("UNRELATED", "x"),
        ]);
        let flags = Layer {
            accel: Some("auto".into()),
            ..Layer::default()
        };
        let c = Config::resolve(&[("config file", file), ("environment", env), ("flag", flags)])
            .unwrap();
        assert_eq!(c.state_dir, Path::new("/env/state"), "env beats file");
        assert_eq!(c.accel, Accel::Auto, "flag beats env");
        assert_eq!(c.run_dir, Path::new("/srv/lq/run"), "file beats default");
        assert_eq!(
            c.pools.len(),
            2,
            "a later pool table replaces the earlier one"
        );
        assert_eq!(c.pools["b"], Path::new("/env/b"));
        assert_eq!(c.images_dir, Path::new("/srv/lq/images"));
    }

    #[test]
    fn images_dir_defaults_under_the_resolved_state_dir() {
        let c = Config::resolve(&[("flag", env(&[("LQ_STATE_DIR", "/x")]))]).unwrap();
        assert_eq!(c.images_dir, Path::new("/x/images"));
        assert_eq!(
            c.listen,
            vec![ListenAddr::Unix(
                "/run/limiquantix/limiquantix-node.sock".into()
            )]
        );
    }

    #[test]
    fn tcp_without_tls_is_refused_with_a_clear_error() {
        let flags = Layer {
            listen: Some(vec!["tcp:0.0.0.0:7443".into()]),
            ..Layer::default()
        };
        let err = Config::resolve(&[("flag", flags)]).unwrap_err().to_string();
        assert!(err.contains("only served with TLS"), "{err}");
        assert!(err.starts_with("flag listen"), "{err}");
    }

    #[test]
    fn tcp_with_tls_is_accepted() {
        let env = env(&[
            ("LQ_LISTEN", "tcp:127.0.0.1:7443,unix:/tmp/a.sock"),
            ("LQ_TLS_CERT", "/c.pem"),
            ("LQ_TLS_KEY", "/k.pem"),
        ]);
        let c = Config::resolve(&[("environment", env)]).unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.tls.cert.as_deref(), Some(Path::new("/c.pem")));
    }

    #[test]
    fn bad_values_name_the_source_and_key() {
        let err = Config::resolve(&[("environment", env(&[("LQ_ACCEL", "xen")]))])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("environment accel") && err.contains("auto, kvm, tcg"),
            "{err}"
        );
        let err = Layer::from_toml("state_dri = \"/x\"").unwrap_err();
        assert!(err.contains("state_dri"), "{err}");
        let err = "unix:relative".parse::<ListenAddr>().unwrap_err();
        assert!(err.contains("absolute"), "{err}");
        assert!(
            Layer::from_env([("LQ_POOLS".into(), "nodir".into())])
                .unwrap_err()
                .to_string()
                .contains("ID=DIR")
        );
    }
}
