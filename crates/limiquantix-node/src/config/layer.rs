//! One source's settings ([`Layer`]): read from the TOML file or the `LQ_*` environment, and
//! laid over one another.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::control_plane::ControlPlaneLayer;
use super::http::HttpLayer;
use super::model::{ConfigError, TlsFiles};

/// One source's settings; everything optional. Also the schema of the TOML file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// `state_dir`: VM definitions, disks and seeds.
    pub state_dir: Option<PathBuf>,
    /// `run_dir`: sockets and pidfiles.
    pub run_dir: Option<PathBuf>,
    /// `listen`: listeners (`unix:PATH`, `tcp:HOST:PORT`, `plaintext+tcp:HOST:PORT`).
    pub listen: Option<Vec<String>>,
    /// `allow_from`: addresses and networks that may connect to the plaintext listeners.
    pub allow_from: Option<Vec<String>>,
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
    /// `[control_plane]`: the LimiQuantix control plane to join.
    pub control_plane: Option<ControlPlaneLayer>,
    /// `[networks]`: a control plane's network id = the host bridge its NICs join.
    pub networks: Option<BTreeMap<String, String>>,
    /// `default_network`: the bridge of NICs on a network the table does not name (`user`:
    /// user-mode NAT, the default).
    pub default_network: Option<String>,
    /// `metrics_listen`: `HOST:PORT` of the Prometheus exporter (plaintext HTTP; off unless set).
    pub metrics_listen: Option<String>,
    /// `metrics_interval_seconds`: how often every VM's usage is sampled.
    pub metrics_interval_seconds: Option<u64>,
    /// `[http]`: the HTTP face (Add Host, VM tabs, image downloads); off unless set.
    pub http: Option<HttpLayer>,
    /// `max_concurrent_starts`: QEMUs starting at once; more StartVMs queue.
    pub max_concurrent_starts: Option<u64>,
    /// `max_concurrent_disk_creations`: CreateVMs creating disks at once; more queue.
    pub max_concurrent_disk_creations: Option<u64>,
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
    /// comma-separated: `LQ_LISTEN=unix:/a.sock,tcp:0.0.0.0:7443`,
    /// `LQ_ALLOW_FROM=10.0.0.2,fd00::/8`, `LQ_POOLS=fast=/srv/a,b=/srv/b`.
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
                "LQ_ALLOW_FROM" => layer.allow_from = Some(list(&value)),
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
                "LQ_METRICS_LISTEN" => layer.metrics_listen = Some(value),
                "LQ_METRICS_INTERVAL_SECONDS" => {
                    layer.metrics_interval_seconds = Some(number(&key, &value)?)
                }
                "LQ_HTTP_LISTEN" | "LQ_IMAGE_HTTP_LISTEN" => {
                    let h = layer.http.get_or_insert_with(HttpLayer::default);
                    if key == "LQ_HTTP_LISTEN" {
                        h.listen = Some(value);
                    } else {
                        h.image_listen = Some(value);
                    }
                }
                "LQ_MAX_CONCURRENT_STARTS" => {
                    layer.max_concurrent_starts = Some(number(&key, &value)?)
                }
                "LQ_MAX_CONCURRENT_DISK_CREATIONS" => {
                    layer.max_concurrent_disk_creations = Some(number(&key, &value)?)
                }
                "LQ_CONTROL_PLANE" => {
                    layer.control_plane = Some(ControlPlaneLayer {
                        url: Some(value),
                        ..Default::default()
                    })
                }
                _ => {}
            }
        }
        if tls != TlsFiles::default() {
            layer.tls = Some(tls);
        }
        Ok(layer)
    }

    /// `self` with every setting `over` has replaced by `over`'s. TLS files and `[control_plane]`
    /// merge key by key.
    pub fn overlay(mut self, over: Layer) -> Layer {
        macro_rules! take {
            ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f; } )* };
        }
        take!(
            state_dir,
            run_dir,
            listen,
            allow_from,
            accel,
            images_dir,
            pools,
            networks,
            default_network,
            qemu_binary,
            qemu_img,
            log_format,
            stop_timeout_seconds,
            max_request_bytes,
            metrics_listen,
            metrics_interval_seconds,
            max_concurrent_starts,
            max_concurrent_disk_creations
        );
        if let Some(o) = over.tls {
            let mut t = self.tls.unwrap_or_default();
            t.cert = o.cert.or(t.cert);
            t.key = o.key.or(t.key);
            t.client_ca = o.client_ca.or(t.client_ca);
            self.tls = Some(t);
        }
        if let Some(o) = over.http {
            self.http = Some(self.http.unwrap_or_default().overlay(o));
        }
        if let Some(o) = over.control_plane {
            self.control_plane = Some(self.control_plane.unwrap_or_default().overlay(o));
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
