//! Command-line flags of `limiquantix-node`, turned into the highest-precedence config [`Layer`].

use crate::config::{Config, ConfigError, ControlPlaneLayer, Layer, TlsFiles, parse_pools};
use clap::Parser;
use std::path::PathBuf;

/// The limiquantix node daemon: serves limiquantix.node.v1 and runs this host's QEMU VMs.
///
/// Settings come from the config file, then `LQ_*` environment variables, then these flags;
/// a later source overrides an earlier one.
#[derive(Debug, Parser)]
#[command(name = "limiquantix-node", version)]
pub struct Flags {
    /// TOML config file (env LQ_CONFIG). Without one, only environment, flags and defaults apply.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State directory: VM definitions, disks, seeds [default: /var/lib/limiquantix].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Run directory: sockets and pidfiles [default: /run/limiquantix].
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Listener, `unix:PATH`, `tcp:HOST:PORT` (TLS required) or `plaintext+tcp:HOST:PORT` (no
    /// TLS, no authentication: for the LimiQuantix control plane; needs --allow-from);
    /// repeatable [default: unix:<run-dir>/limiquantix-node.sock].
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,
    /// Address or network (`10.0.0.2`, `10.0.0.0/24`, `fd00::/8`) that may connect to the
    /// plaintext+tcp: listeners; repeatable. Other connections are closed at accept time
    /// [default: the address of --control-plane's URL, when it names one].
    #[arg(long, value_name = "CIDR")]
    pub allow_from: Vec<String>,
    /// PEM server certificate for tcp: listeners.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for tcp: listeners.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates signed by it (mTLS).
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Accelerator: auto, kvm or tcg [default: auto].
    #[arg(long, value_name = "ACCEL")]
    pub accel: Option<String>,
    /// Images directory, always an allowed source of backing files and ISOs
    /// [default: <state-dir>/images].
    #[arg(long, value_name = "DIR")]
    pub images_dir: Option<PathBuf>,
    /// Storage pool `ID=DIR`; repeatable. Disk paths and backing files must be inside a pool or
    /// the images directory.
    #[arg(long, value_name = "ID=DIR")]
    pub pool: Vec<String>,
    /// A control plane's network `ID=BRIDGE`: NICs on network ID join host bridge BRIDGE;
    /// repeatable.
    #[arg(long, value_name = "ID=BRIDGE")]
    pub network: Vec<String>,
    /// The bridge of NICs on a network --network does not name [default: user, user-mode NAT].
    #[arg(long, value_name = "BRIDGE")]
    pub default_network: Option<String>,
    /// QEMU system emulator [default: qemu-system-x86_64].
    #[arg(long, value_name = "PATH")]
    pub qemu_binary: Option<PathBuf>,
    /// qemu-img [default: qemu-img].
    #[arg(long, value_name = "PATH")]
    pub qemu_img: Option<PathBuf>,
    /// Log format: text or json [default: text]. The level comes from RUST_LOG (default info).
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// LimiQuantix control plane to register with and send heartbeats to, http(s)://HOST:PORT
    /// (env LQ_CONTROL_PLANE; the config file's [control_plane] has the other settings).
    #[arg(long, value_name = "URL")]
    pub control_plane: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (plaintext HTTP, no authentication; the
    /// figures name every VM) [default: off].
    #[arg(long, value_name = "IP:PORT")]
    pub metrics_listen: Option<String>,
    /// Seconds between two samples of every VM's usage [default: 5].
    #[arg(long, value_name = "SECONDS")]
    pub metrics_interval: Option<u64>,
    /// Serve the HTTP face (the control plane's Add Host, VM tabs and image downloads) over
    /// HTTPS at IP:PORT (the control plane uses 8443); only from the allow-list [default: off].
    #[arg(long, value_name = "IP:PORT")]
    pub http_listen: Option<String>,
    /// PEM certificate of --http-listen [default: self-signed, kept in the state directory].
    #[arg(long, value_name = "FILE")]
    pub http_cert: Option<PathBuf>,
    /// PEM private key of --http-cert.
    #[arg(long, value_name = "FILE")]
    pub http_key: Option<PathBuf>,
    /// Serve the image-download pair over plain HTTP at IP:PORT (the control plane uses 8080);
    /// only from the allow-list [default: off].
    #[arg(long, value_name = "IP:PORT")]
    pub image_http_listen: Option<String>,
    /// QEMUs starting at once; more StartVMs wait their turn until their deadline [default: 4].
    #[arg(long, value_name = "N")]
    pub max_concurrent_starts: Option<u64>,
    /// CreateVMs creating disks at once; more wait their turn until their deadline
    /// [default: 8].
    #[arg(long, value_name = "N")]
    pub max_concurrent_disk_creations: Option<u64>,
    /// Print the resolved configuration as JSON and exit.
    #[arg(long)]
    pub print_config: bool,
}

impl Flags {
    /// The `[http]` settings the flags give.
    fn http_layer(&self) -> Option<crate::config::HttpLayer> {
        let h = crate::config::HttpLayer {
            listen: self.http_listen.clone(),
            image_listen: self.image_http_listen.clone(),
            cert: self.http_cert.clone(),
            key: self.http_key.clone(),
        };
        (h != crate::config::HttpLayer::default()).then_some(h)
    }

    /// The settings the flags give.
    pub fn layer(&self) -> Result<Layer, ConfigError> {
        let tls = TlsFiles {
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            client_ca: self.tls_client_ca.clone(),
        };
        Ok(Layer {
            state_dir: self.state_dir.clone(),
            run_dir: self.run_dir.clone(),
            listen: (!self.listen.is_empty()).then(|| self.listen.clone()),
            allow_from: (!self.allow_from.is_empty()).then(|| self.allow_from.clone()),
            accel: self.accel.clone(),
            images_dir: self.images_dir.clone(),
            pools: if self.pool.is_empty() {
                None
            } else {
                Some(parse_pools("flag", "--pool", &self.pool)?)
            },
            tls: (tls != TlsFiles::default()).then_some(tls),
            qemu_binary: self.qemu_binary.clone(),
            qemu_img: self.qemu_img.clone(),
            log_format: self.log_format.clone(),
            stop_timeout_seconds: None,
            max_request_bytes: None,
            control_plane: self.control_plane.clone().map(|url| ControlPlaneLayer {
                url: Some(url),
                ..Default::default()
            }),
            networks: if self.network.is_empty() {
                None
            } else {
                Some(parse_networks(&self.network)?)
            },
            default_network: self.default_network.clone(),
            metrics_listen: self.metrics_listen.clone(),
            metrics_interval_seconds: self.metrics_interval,
            http: self.http_layer(),
            max_concurrent_starts: self.max_concurrent_starts,
            max_concurrent_disk_creations: self.max_concurrent_disk_creations,
        })
    }

    /// Resolves the configuration from the file (`--config`, else `LQ_CONFIG`), the given
    /// environment and the flags.
    pub fn resolve(
        &self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let config_file = self.config.clone().or_else(|| {
            env.iter()
                .find(|(k, _)| k == "LQ_CONFIG")
                .map(|(_, v)| PathBuf::from(v))
        });
        let mut layers = Vec::new();
        if let Some(path) = config_file {
            layers.push(("config file", Layer::from_file(&path)?));
        }
        layers.push(("environment", Layer::from_env(env)?));
        layers.push(("flag", self.layer()?));
        Config::resolve(&layers)
    }
}

/// `--network ID=BRIDGE` values: the network table.
fn parse_networks(
    values: &[String],
) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
    let mut table = std::collections::BTreeMap::new();
    for v in values {
        match v.split_once('=') {
            Some((id, bridge)) if !id.is_empty() && !bridge.is_empty() => {
                table.insert(id.to_string(), bridge.to_string());
            }
            _ => {
                return Err(ConfigError::Invalid {
                    source_name: "flag",
                    key: "--network".into(),
                    problem: format!("{v:?} is not ID=BRIDGE"),
                });
            }
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "state_dir = \"/f/state\"\nrun_dir = \"/f/run\"\naccel = \"kvm\"\n\
             images_dir = \"/f/images\"\n[pools]\nfile = \"/f/pool\"\n",
        )
        .unwrap();
        let flags = Flags::parse_from([
            "limiquantix-node",
            "--config",
            file.to_str().unwrap(),
            "--accel",
            "tcg",
            "--pool",
            "one=/p/one",
            "--pool",
            "two=/p/two",
        ]);
        let env = [
            ("LQ_RUN_DIR".to_string(), "/e/run".to_string()),
            ("LQ_ACCEL".into(), "auto".into()),
        ];
        let c = flags.resolve(env).unwrap();
        assert_eq!(c.state_dir, Path::new("/f/state"));
        assert_eq!(c.run_dir, Path::new("/e/run"));
        assert_eq!(c.images_dir, Path::new("/f/images"));
        assert_eq!(c.accel, limiquantix_vm::accel::Accel::Tcg);
        assert_eq!(c.pools.keys().collect::<Vec<_>>(), ["one", "two"]);
    }

    #[test]
    fn config_file_from_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(&file, "state_dir = \"/from/file\"\n").unwrap();
        let flags = Flags::parse_from(["limiquantix-node"]);
        let c = flags
            .resolve([("LQ_CONFIG".to_string(), file.display().to_string())])
            .unwrap();
        assert_eq!(c.state_dir, Path::new("/from/file"));
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let flags = Flags::parse_from(["limiquantix-node", "--config", "/nonexistent/x.toml"]);
        let err = flags.resolve([]).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/x.toml"), "{err}");
    }
}
