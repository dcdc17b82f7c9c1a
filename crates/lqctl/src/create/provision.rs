//! How a new VM gets provisioned: the daemon's default seed with the user's inputs, or the
//! cloud-init documents, built here by the seed engine when the flags call for them.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use limiquantix_cloudinit::DefaultUserData;
use limiquantix_proto::v1::{CloudInitConfig, DefaultSeedOptions};

use super::args::CreateArgs;
use super::inputs::{read_password, read_text};

/// How the VM gets provisioned, from the flags.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Provisioning {
    /// The four documents, when any is given or must be built (`--ip`).
    pub cloud_init: Option<CloudInitConfig>,
    /// Inputs of the daemon's default seed (user, keys, password) when only those are given.
    pub default_seed: Option<DefaultSeedOptions>,
}

/// Decides provisioning: no cloud-init flag → nothing (the daemon's default seed); only
/// `--ssh-key/--user/--password-file` → the daemon's default seed with those inputs; any document
/// or `--ip` → the documents, with user-data built by the seed engine's `DefaultUserData` when
/// `--user-data` is absent and network-config by its generator for `--ip`.
pub(super) fn provisioning(
    a: &CreateArgs,
    keys: &[String],
    first_mac: Option<&str>,
) -> anyhow::Result<Provisioning> {
    let any_document = a.user_data.is_some()
        || a.meta_data.is_some()
        || a.network_config.is_some()
        || a.vendor_data.is_some();
    let wants_user = !keys.is_empty() || a.user.is_some() || a.password_file.is_some();
    if !any_document && a.ip.is_none() {
        if !wants_user {
            return Ok(Provisioning::default());
        }
        return Ok(Provisioning {
            cloud_init: None,
            default_seed: Some(default_seed(a, keys)?),
        });
    }
    Ok(Provisioning {
        cloud_init: Some(documents(a, keys, first_mac)?),
        default_seed: None,
    })
}

/// The inputs of the daemon's default seed: `--user`, the keys and `--password-file`.
fn default_seed(a: &CreateArgs, keys: &[String]) -> anyhow::Result<DefaultSeedOptions> {
    Ok(DefaultSeedOptions {
        user: a.user.clone().unwrap_or_default(),
        ssh_authorized_keys: keys.to_vec(),
        password: a
            .password_file
            .as_deref()
            .map(read_password)
            .transpose()?
            .unwrap_or_default(),
    })
}

/// The four documents: the files given, user-data built by [`default_user_data`] when
/// `--user-data` is absent, and network-config built for `--ip` when `--network-config` is.
fn documents(
    a: &CreateArgs,
    keys: &[String],
    first_mac: Option<&str>,
) -> anyhow::Result<CloudInitConfig> {
    let read =
        |flag: &str, p: &Option<PathBuf>| p.as_deref().map(|p| read_text(flag, p)).transpose();
    let mut cfg = CloudInitConfig {
        user_data: read("--user-data", &a.user_data)?.unwrap_or_default(),
        meta_data: read("--meta-data", &a.meta_data)?.unwrap_or_default(),
        network_config: read("--network-config", &a.network_config)?.unwrap_or_default(),
        vendor_data: read("--vendor-data", &a.vendor_data)?.unwrap_or_default(),
    };
    if a.user_data.is_none() {
        cfg.user_data = default_user_data(a, keys)?;
    }
    if let Some(ip) = &a.ip
        && a.network_config.is_none()
    {
        let mac = first_mac.ok_or_else(|| anyhow!("--ip needs a NIC"))?;
        cfg.network_config = static_network_config(mac, ip, a.gateway.as_deref(), &a.dns)?;
    }
    Ok(cfg)
}

/// The user-data of the seed engine's `DefaultUserData` for the VM's name, with the keys,
/// `--user` and `--password-file`.
fn default_user_data(a: &CreateArgs, keys: &[String]) -> anyhow::Result<String> {
    let mut ud = DefaultUserData::new(&a.name).ssh_keys(keys.iter().cloned());
    if let Some(user) = &a.user {
        ud = ud.user(user);
    }
    if let Some(p) = &a.password_file {
        ud = ud
            .password(&read_password(p)?)
            .map_err(|e| anyhow!("--password-file: {e}"))?;
    }
    ud.validate().map_err(|e| anyhow!("{e}"))?;
    let yaml = ud
        .to_yaml()
        .map_err(|e| anyhow!("cannot build user-data: {e}"))?;
    String::from_utf8(yaml).context("user-data is not UTF-8")
}

/// The network-config of `--ip/--gateway/--dns`: a static address on the first NIC, matched by
/// its MAC, built by the seed engine's generator.
pub(super) fn static_network_config(
    mac: &str,
    ip: &str,
    gateway: Option<&str>,
    dns: &[String],
) -> anyhow::Result<String> {
    use limiquantix_cloudinit::network::{IpCidr, NetworkConfig, NicConfig};
    use std::net::IpAddr;
    let addr: IpCidr = ip.parse().map_err(|e| anyhow!("--ip {ip:?}: {e}"))?;
    let parse = |flag: &str, s: &str| {
        s.parse::<IpAddr>()
            .map_err(|_| anyhow!("{flag} {s:?} is not an IP address"))
    };
    let mut nic = NicConfig {
        mac: mac.to_owned(),
        addresses: vec![addr],
        ..NicConfig::default()
    };
    if let Some(gw) = gateway {
        let gw = parse("--gateway", gw)?;
        if gw.is_ipv4() != addr.addr.is_ipv4() {
            bail!("--gateway {gw} and --ip {ip} are of different IP versions");
        }
        if gw.is_ipv4() {
            nic.gateway4 = Some(gw);
        } else {
            nic.gateway6 = Some(gw);
        }
    }
    for d in dns {
        nic.nameservers.push(parse("--dns", d)?);
    }
    let doc = NetworkConfig::from_nics(&[nic]).map_err(|e| anyhow!("{e}"))?;
    let yaml = doc
        .to_yaml()
        .map_err(|e| anyhow!("cannot build network-config: {e}"))?;
    String::from_utf8(yaml).context("network-config is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_addresses_become_network_config() {
        let y = static_network_config(
            "52:54:00:12:34:56",
            "192.0.2.10/24",
            Some("192.0.2.1"),
            &["192.0.2.53".into()],
        )
        .unwrap();
        for needle in [
            "version: 2",
            "52:54:00:12:34:56",
            "192.0.2.10/24",
            "192.0.2.1",
            "192.0.2.53",
        ] {
            assert!(y.contains(needle), "{needle} missing in:\n{y}");
        }
        let mac = "52:54:00:12:34:56";
        assert!(static_network_config(mac, "192.0.2.10", None, &[]).is_err());
        assert!(static_network_config(mac, "192.0.2.10/24", Some("fe80::1"), &[]).is_err());
        assert!(static_network_config(mac, "192.0.2.10/24", None, &["x".into()]).is_err());
    }

    fn args(extra: &[&str]) -> CreateArgs {
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            a: CreateArgs,
        }
        let mut argv = vec!["t", "web1", "--image", "noble"];
        argv.extend_from_slice(extra);
        <T as clap::Parser>::parse_from(argv).a
    }

    #[test]
    fn provisioning_decisions() {
        let mac = Some("52:54:00:12:34:56");
        // Nothing asked: the daemon's default seed, untouched.
        assert_eq!(
            provisioning(&args(&[]), &[], mac).unwrap(),
            Provisioning::default()
        );
        // Only a key and a user: the daemon's default seed with those inputs.
        let a = args(&["--user", "ops"]);
        let p = provisioning(&a, &["ssh-ed25519 AAAA k".into()], mac).unwrap();
        assert!(p.cloud_init.is_none());
        let seed = p.default_seed.unwrap();
        assert_eq!(
            (seed.user.as_str(), seed.ssh_authorized_keys.len()),
            ("ops", 1)
        );
        // A static address: documents built here, user-data by DefaultUserData.
        let a = args(&["--ip", "192.0.2.10/24", "--gateway", "192.0.2.1"]);
        let ci = provisioning(&a, &[], mac).unwrap().cloud_init.unwrap();
        assert!(
            ci.user_data.starts_with("#cloud-config\n"),
            "{}",
            ci.user_data
        );
        assert!(
            ci.network_config.contains("52:54:00:12:34:56"),
            "{}",
            ci.network_config
        );
        assert!(ci.meta_data.is_empty() && ci.vendor_data.is_empty());
        // A user-data file is sent as is.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ud");
        std::fs::write(&f, "#cloud-config\nruncmd: [touch, /x]\n").unwrap();
        let a = args(&["--user-data", f.to_str().unwrap()]);
        let ci = provisioning(&a, &[], mac).unwrap().cloud_init.unwrap();
        assert_eq!(ci.user_data, "#cloud-config\nruncmd: [touch, /x]\n");
        let a = args(&["--user-data", "/nonexistent/ud"]);
        assert!(
            provisioning(&a, &[], mac)
                .unwrap_err()
                .to_string()
                .contains("--user-data")
        );
    }
}
