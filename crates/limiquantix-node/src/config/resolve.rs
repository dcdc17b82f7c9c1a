//! [`Config::resolve`]: the layers applied in order, defaults filled in, and every section
//! checked (directories, listeners, TLS and the allow-list, pools, request size).

use limiquantix_vm::accel::Accel;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::allow::Cidr;
use super::layer::Layer;
use super::model::{
    Config, ConfigError, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_RUN_DIR, DEFAULT_STATE_DIR,
    DEFAULT_STOP_TIMEOUT_SECS, ListenAddr, LogFormat, SOCKET_NAME, TlsFiles,
};

impl Config {
    /// Applies `layers` in order (later wins), fills defaults, and checks the result.
    pub fn resolve(layers: &[(&'static str, Layer)]) -> Result<Config, ConfigError> {
        let (merged, origins) = merge(layers);
        let (state_dir, run_dir) = directories(merged.state_dir, merged.run_dir)?;
        let listen = listeners(merged.listen, &run_dir, &origins)?;
        let accel = match merged.accel {
            Some(a) => a
                .parse::<Accel>()
                .map_err(|p| origins.invalid("accel", p))?,
            None => Accel::Auto,
        };
        let log_format = match merged.log_format {
            Some(f) => f.parse().map_err(|p| origins.invalid("log_format", p))?,
            None => LogFormat::Text,
        };
        let tls = tls_for(&listen, merged.tls.unwrap_or_default(), &origins)?;
        let control_plane = super::control_plane::resolve(merged.control_plane)
            .map_err(|p| origins.invalid("control_plane", p))?;
        // Without an allow-list, the plaintext listeners allow the control plane's address.
        let control_plane_ip = control_plane.as_ref().and_then(|cp| cp.address());
        let (http, guarded) = http_settings(
            merged.http,
            &listen,
            merged.allow_from.is_some(),
            control_plane_ip,
            &origins,
        )?;
        let allow_from = allow_list(&guarded, merged.allow_from, control_plane_ip, &origins)?;
        let pools = merged.pools.unwrap_or_default();
        check_pools(&pools)?;
        let networks = merged.networks.unwrap_or_default();
        let default_network = merged.default_network.filter(|n| n != "user");
        check_networks(&networks, default_network.as_deref())?;
        let max_request_bytes = merged
            .max_request_bytes
            .unwrap_or(DEFAULT_MAX_REQUEST_BYTES);
        check_max_request_bytes(max_request_bytes)?;
        let (metrics_listen, metrics_interval) =
            metrics(merged.metrics_listen, merged.metrics_interval_seconds)?;
        let max_concurrent_starts = cap("max_concurrent_starts", merged.max_concurrent_starts, 4)?;
        let max_concurrent_disk_creations = cap(
            "max_concurrent_disk_creations",
            merged.max_concurrent_disk_creations,
            8,
        )?;
        Ok(Config {
            images_dir: merged
                .images_dir
                .unwrap_or_else(|| state_dir.join("images")),
            state_dir,
            run_dir,
            listen,
            accel,
            pools,
            networks,
            default_network,
            tls,
            allow_from,
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
            control_plane,
            metrics_listen,
            metrics_interval,
            http,
            max_concurrent_starts,
            max_concurrent_disk_creations,
        })
    }
}

/// The exporter's address (`HOST:PORT`, an IP address) and the sampling interval (≥ 1 s).
fn metrics(
    listen: Option<String>,
    interval: Option<u64>,
) -> Result<(Option<std::net::SocketAddr>, Duration), ConfigError> {
    let invalid = |key: &str, problem: String| ConfigError::Invalid {
        source_name: "config",
        key: key.into(),
        problem,
    };
    let listen = match listen.filter(|l| !l.is_empty()) {
        Some(l) => Some(l.parse().map_err(|_| {
            invalid(
                "metrics_listen",
                format!("{l:?} is not IP:PORT (for example 127.0.0.1:9100)"),
            )
        })?),
        None => None,
    };
    let secs = interval.unwrap_or(super::model::DEFAULT_METRICS_INTERVAL_SECS);
    if !(1..=3600).contains(&secs) {
        return Err(invalid(
            "metrics_interval_seconds",
            format!("{secs} is outside 1..=3600"),
        ));
    }
    Ok((listen, Duration::from_secs(secs)))
}

/// The HTTP settings, and every listener the allow-list guards: the plaintext API listeners
/// and the HTTP ones. An HTTP listener needs an allow-list (or the control plane's address).
fn http_settings(
    layer: Option<super::http::HttpLayer>,
    listen: &[ListenAddr],
    allow_set: bool,
    control_plane_ip: Option<IpAddr>,
    origins: &Origins,
) -> Result<(super::http::HttpConfig, Vec<ListenAddr>), ConfigError> {
    let http = super::http::HttpConfig::resolve(layer.unwrap_or_default())
        .map_err(|p| origins.invalid("http", p))?;
    if http.enabled() && !allow_set && control_plane_ip.is_none() {
        return Err(origins.invalid(
            "http",
            "the HTTP listeners (http listen, image_listen) are only served with an \
             allow-list: set allow_from to the control plane's address or network \
             (--allow-from ADDR|CIDR, repeatable; LQ_ALLOW_FROM), or give the control \
             plane's URL with an IP address, which is then allowed"
                .into(),
        ));
    }
    let guarded = listen
        .iter()
        .cloned()
        .chain(
            [http.listen, http.image_listen]
                .into_iter()
                .flatten()
                .map(|a| ListenAddr::Plaintext(a.to_string())),
        )
        .collect();
    Ok((http, guarded))
}

/// A cap on concurrent work: `default` when unset, else 1 to 1024.
fn cap(key: &str, value: Option<u64>, default: usize) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(n @ 1..=1024) => Ok(n as usize),
        Some(n) => Err(ConfigError::Invalid {
            source_name: "config",
            key: key.into(),
            problem: format!("{n} is outside 1..=1024"),
        }),
    }
}

/// Which layer last set each setting whose errors name their source.
#[derive(Default)]
pub(super) struct Origins(BTreeMap<&'static str, &'static str>);

impl Origins {
    /// The error for `key`, naming the layer that set it.
    pub(super) fn invalid(&self, key: &'static str, problem: String) -> ConfigError {
        ConfigError::Invalid {
            source_name: self.0.get(key).copied().unwrap_or("config"),
            key: key.into(),
            problem,
        }
    }
}

/// The layers laid over one another, and where the settings that name their source came from.
fn merge(layers: &[(&'static str, Layer)]) -> (Layer, Origins) {
    let mut merged = Layer::default();
    let mut origin: BTreeMap<&'static str, &'static str> = BTreeMap::new();
    for (name, layer) in layers {
        for (key, set) in [
            ("listen", layer.listen.is_some()),
            ("allow_from", layer.allow_from.is_some()),
            ("accel", layer.accel.is_some()),
            ("log_format", layer.log_format.is_some()),
            ("tls", layer.tls.is_some()),
            ("control_plane", layer.control_plane.is_some()),
        ] {
            if set {
                origin.insert(key, name);
            }
        }
        merged = merged.overlay(layer.clone());
    }
    (merged, Origins(origin))
}

/// The state and run directories, defaulted; both must be absolute.
fn directories(
    state_dir: Option<PathBuf>,
    run_dir: Option<PathBuf>,
) -> Result<(PathBuf, PathBuf), ConfigError> {
    let state_dir = state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into());
    let run_dir = run_dir.unwrap_or_else(|| DEFAULT_RUN_DIR.into());
    for (key, dir) in [("state_dir", &state_dir), ("run_dir", &run_dir)] {
        if !dir.is_absolute() {
            return Err(not_absolute(key.into(), dir));
        }
    }
    Ok((state_dir, run_dir))
}

/// The listeners, parsed; by default the Unix socket in the run directory.
fn listeners(
    listen: Option<Vec<String>>,
    run_dir: &Path,
    origins: &Origins,
) -> Result<Vec<ListenAddr>, ConfigError> {
    Ok(match listen {
        Some(l) if !l.is_empty() => l
            .iter()
            .map(|s| s.parse::<ListenAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|p| origins.invalid("listen", p))?,
        _ => vec![ListenAddr::Unix(run_dir.join(SOCKET_NAME))],
    })
}

/// The TLS files, checked against the listeners: a tcp: listener needs a certificate and key,
/// and TLS files without one are a mistake.
fn tls_for(
    listen: &[ListenAddr],
    tls: TlsFiles,
    origins: &Origins,
) -> Result<TlsFiles, ConfigError> {
    let has_tcp = listen.iter().any(|l| matches!(l, ListenAddr::Tcp(_)));
    if has_tcp && (tls.cert.is_none() || tls.key.is_none()) {
        return Err(origins.invalid(
            "listen",
            "a tcp: listener is only served with TLS: set tls_cert and tls_key \
             (--tls-cert/--tls-key, LQ_TLS_CERT/LQ_TLS_KEY or [tls] cert/key), \
             or listen on unix:PATH; for the LimiQuantix control plane, which has no TLS, \
             use plaintext+tcp:HOST:PORT with allow_from"
                .into(),
        ));
    }
    if !has_tcp && tls != TlsFiles::default() {
        return Err(origins.invalid(
            "tls",
            "TLS files are set but no tcp: listener is configured".into(),
        ));
    }
    Ok(tls)
}

/// The allow-list of the plaintext listeners: as configured; else the control plane's address
/// when its URL names one (`control_plane`); else a plaintext listener is refused. An
/// allow-list without a plaintext listener is a mistake.
pub(super) fn allow_list(
    listen: &[ListenAddr],
    configured: Option<Vec<String>>,
    control_plane: Option<IpAddr>,
    origins: &Origins,
) -> Result<Vec<Cidr>, ConfigError> {
    let list = configured
        .unwrap_or_default()
        .iter()
        .map(|s| s.parse::<Cidr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|p| origins.invalid("allow_from", p))?;
    let has_plaintext = listen.iter().any(|l| matches!(l, ListenAddr::Plaintext(_)));
    if !has_plaintext && !list.is_empty() {
        return Err(origins.invalid(
            "allow_from",
            "an allow-list is set but no plaintext+tcp: listener is configured \
             (it applies to plaintext listeners only)"
                .into(),
        ));
    }
    if !has_plaintext || !list.is_empty() {
        return Ok(list);
    }
    if let Some(ip) = control_plane {
        return Ok(vec![Cidr::host(ip)]);
    }
    Err(origins.invalid(
        "listen",
        "a plaintext+tcp: listener (no TLS, no authentication) is only served with an \
         allow-list: set allow_from to the control plane's address or network \
         (--allow-from ADDR|CIDR, repeatable; LQ_ALLOW_FROM; allow_from = [...] in the config \
         file), or give the control plane's URL with an IP address, which is then allowed"
            .into(),
    ))
}

/// Pool ids are 1-63 characters of `A-Z a-z 0-9 - _`; pool directories are absolute.
/// Bridge names: Linux interface names (1 to 15 characters, no `/`, whitespace or `:`), or
/// `user` for user-mode NAT.
fn check_networks(
    networks: &BTreeMap<String, String>,
    default_network: Option<&str>,
) -> Result<(), ConfigError> {
    let bridges = networks
        .iter()
        .map(|(id, b)| (format!("networks.{id}"), b.as_str()))
        .chain(default_network.map(|b| ("default_network".to_string(), b)));
    for (key, bridge) in bridges {
        let ok = bridge == "user"
            || ((1..=15).contains(&bridge.len())
                && bridge
                    .bytes()
                    .all(|c| c.is_ascii_graphic() && !b"/:".contains(&c)));
        if !ok {
            return Err(ConfigError::Invalid {
                key,
                source_name: "config file",
                problem: format!(
                    "{bridge:?} is not a bridge name (1 to 15 characters, no '/', ':' or \
                     spaces), nor \"user\" (user-mode NAT)"
                ),
            });
        }
    }
    Ok(())
}

fn check_pools(pools: &BTreeMap<String, PathBuf>) -> Result<(), ConfigError> {
    for (id, dir) in pools {
        let ok = !id.is_empty()
            && id.len() <= 63
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(ConfigError::Invalid {
                source_name: "config",
                key: "pools".into(),
                problem: format!("pool id {id:?}: 1-63 characters of A-Z a-z 0-9 - _ are allowed"),
            });
        }
        if !dir.is_absolute() {
            return Err(not_absolute(format!("pools.{id}"), dir));
        }
    }
    Ok(())
}

/// The request size limit may not go below 64 KiB.
fn check_max_request_bytes(max_request_bytes: usize) -> Result<(), ConfigError> {
    if max_request_bytes < 64 * 1024 {
        return Err(ConfigError::Invalid {
            source_name: "config",
            key: "max_request_bytes".into(),
            problem: format!("{max_request_bytes} is below the minimum of 65536"),
        });
    }
    Ok(())
}

/// The error for a directory setting that is not an absolute path.
fn not_absolute(key: String, dir: &Path) -> ConfigError {
    ConfigError::Invalid {
        source_name: "config",
        key,
        problem: format!("{} is not an absolute path", dir.display()),
    }
}
