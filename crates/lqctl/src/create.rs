//! `lqctl vm create`: builds a `CreateVM` request from flags, with the cloud-init documents built
//! client-side when the flags call for them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use limiquantix_cloudinit::DefaultUserData;
use limiquantix_proto::v1::{
    CdromSpec, CloudInitConfig, CreateVmOnNodeRequest, DefaultSeedOptions, DiskSpec, Firmware,
    NicModel, NicSpec, PortForward, VmIdRequest, VmSpec,
};

use crate::Ctx;
use crate::daemon::CallExt as _;
use crate::output::{Format, print_structured};
use crate::units::{parse_disk_gib, parse_duration, parse_memory_mib};
use crate::wait::{self, WaitFor};

/// Label recording the SSH forward lqctl set up, as `USER@HOST:PORT`.
pub const SSH_LABEL: &str = "lq.ssh";

/// Disk size of a VM installed from an ISO when --disk-size is not given.
const ISO_DISK_GIB: u64 = 20;

/// Firmware choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FirmwareArg {
    /// Legacy BIOS (SeaBIOS).
    Bios,
    /// UEFI (OVMF).
    Uefi,
    /// Chosen by the daemon from the boot disk's partition table.
    Auto,
}

/// `vm create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The VM's name; also the guest's hostname.
    pub name: String,
    /// A name from the node's image library (`lqctl image list`), or a path on the node. A cloud
    /// image becomes a copy-on-write overlay; an ISO is attached as a bootable CD-ROM.
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// Virtual CPUs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub cpus: u32,
    /// Memory (e.g. 512M, 2G).
    #[arg(long, default_value = "1G", value_parser = parse_memory_mib, value_name = "SIZE")]
    pub memory: u64,
    /// Disk size in whole GiB (e.g. 20G); the image's own size when absent.
    #[arg(long, value_parser = parse_disk_gib, value_name = "SIZE")]
    pub disk_size: Option<u64>,
    /// An SSH public key file (or the key itself) for the guest user; repeatable.
    #[arg(long = "ssh-key", value_name = "FILE")]
    pub ssh_keys: Vec<String>,
    /// The guest user to create [default: admin].
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// A file holding the guest user's password (stored in the seed only as a SHA-512 hash).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// cloud-init user-data file, used as is (then --ssh-key/--user/--password-file are ignored).
    #[arg(long, value_name = "FILE")]
    pub user_data: Option<PathBuf>,
    /// cloud-init meta-data file [default: generated from the VM id and name].
    #[arg(long, value_name = "FILE")]
    pub meta_data: Option<PathBuf>,
    /// cloud-init network-config file (v1 or v2).
    #[arg(long, value_name = "FILE")]
    pub network_config: Option<PathBuf>,
    /// cloud-init vendor-data file.
    #[arg(long, value_name = "FILE")]
    pub vendor_data: Option<PathBuf>,
    /// A network interface, repeatable: `user` (QEMU user-mode networking, the default),
    /// `bridge=BR` or `network=NAME`, followed by options `,model=virtio|e1000|rtl8139`,
    /// `,mac=52:54:00:12:34:56`, `,forward=[tcp|udp:]HOSTPORT:GUESTPORT` (user-mode only).
    #[arg(long = "nic", value_name = "SPEC")]
    pub nics: Vec<String>,
    /// A static address for the first NIC (e.g. 192.0.2.10/24), written as network-config.
    #[arg(long, value_name = "CIDR")]
    pub ip: Option<String>,
    /// The default gateway with --ip.
    #[arg(long, value_name = "IP", requires = "ip")]
    pub gateway: Option<String>,
    /// A DNS server with --ip; repeatable.
    #[arg(long = "dns", value_name = "IP", requires = "ip")]
    pub dns: Vec<String>,
    /// Firmware.
    #[arg(long, value_enum, default_value_t = FirmwareArg::Auto)]
    pub firmware: FirmwareArg,
    /// Forward this host port (on 127.0.0.1) to the guest's SSH port; `auto` picks a free one.
    /// Default: auto when SSH keys are given and the first NIC is user-mode.
    #[arg(long, value_name = "PORT|auto|off")]
    pub ssh_port: Option<String>,
    /// A label KEY=VALUE stored with the VM; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Start the VM once it is defined.
    #[arg(long)]
    pub start: bool,
    /// Start the VM and wait until it is ready (cloud-init done; for an ISO, until it runs).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, value_parser = parse_duration, default_value = "10m", value_name = "DURATION")]
    pub timeout: Duration,
}

/// Reads a small text file a flag names.
fn read_text(flag: &str, path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| anyhow!("cannot read {flag} {}: {e}", path.display()))
}

/// Collects public keys from `--ssh-key` values: a key given literally, or a file of keys.
pub fn ssh_keys(values: &[String]) -> anyhow::Result<Vec<String>> {
    let mut keys = Vec::new();
    for v in values {
        let literal = ["ssh-", "ecdsa-", "sk-"].iter().any(|p| v.starts_with(p));
        let text = if literal {
            v.clone()
        } else {
            let path = expand_home(v);
            let text = read_text("--ssh-key", &path)?;
            if text.contains("PRIVATE KEY") {
                bail!("--ssh-key {v} is a private key: give the public key ({v}.pub)");
            }
            text
        };
        let found: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        if found.is_empty() {
            bail!("--ssh-key {v} holds no public key");
        }
        keys.extend(found);
    }
    Ok(keys)
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// Parses `--nic` specs.
pub fn parse_nic(spec: &str, index: usize) -> anyhow::Result<NicSpec> {
    let bad = |why: String| anyhow!("--nic {spec:?}: {why}");
    let mut nic = NicSpec {
        id: format!("net{index}"),
        ..Default::default()
    };
    for (i, part) in spec.split(',').enumerate() {
        let part = part.trim();
        if i == 0 && part == "user" {
            nic.network = "user".into();
            continue;
        }
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("{part:?} is not user, KEY=VALUE")))?;
        match key {
            "bridge" if i == 0 => nic.bridge = value.into(),
            "network" if i == 0 => nic.network = value.into(),
            "model" => {
                nic.model = match value {
                    "virtio" => NicModel::Virtio,
                    "e1000" => NicModel::E1000,
                    "rtl8139" => NicModel::Rtl8139,
                    _ => {
                        return Err(bad(format!(
                            "model {value:?}: use virtio, e1000 or rtl8139"
                        )));
                    }
                } as i32;
            }
            "mac" => nic.mac_address = value.to_ascii_lowercase(),
            "forward" => nic.port_forwards.push(parse_forward(value).map_err(bad)?),
            _ => {
                return Err(bad(format!(
                    "unknown key {key:?}: the first item is user, bridge=BR or network=NAME; then model=, mac=, forward="
                )));
            }
        }
    }
    let user_mode = nic.bridge.is_empty() && matches!(nic.network.as_str(), "" | "user");
    if !nic.port_forwards.is_empty() && !user_mode {
        return Err(bad("forward= works only on user-mode NICs".into()));
    }
    Ok(nic)
}

fn parse_forward(v: &str) -> Result<PortForward, String> {
    let (protocol, rest) = match v.split_once(':') {
        Some((p @ ("tcp" | "udp"), rest)) => (p, rest),
        _ => ("tcp", v),
    };
    let (host, guest) = rest
        .split_once(':')
        .ok_or_else(|| format!("forward {v:?}: write [tcp|udp:]HOSTPORT:GUESTPORT"))?;
    let port = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("forward {v:?}: {s:?} is not a port (1-65535)"))
    };
    Ok(PortForward {
        protocol: protocol.into(),
        host_address: "127.0.0.1".into(),
        host_port: u32::from(port(host)?),
        guest_port: u32::from(port(guest)?),
    })
}

/// A random locally administered MAC in QEMU's 52:54:00 range.
fn random_mac() -> String {
    let b = uuid::Uuid::new_v4().into_bytes();
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// A free TCP port on 127.0.0.1 (the daemon's host is this host when talking over its socket).
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

/// What the image argument designates.
#[derive(Debug, PartialEq, Eq)]
pub enum ImageChoice {
    /// A disk image: the VM disk is an overlay on it.
    Disk(String),
    /// An ISO: attached as a bootable CD-ROM with a blank disk.
    Iso(String),
}

async fn choose_image(ctx: &Ctx, image: &str) -> anyhow::Result<ImageChoice> {
    let is_iso = |p: &str| p.to_ascii_lowercase().ends_with(".iso");
    if image.contains('/') {
        let path = std::path::absolute(expand_home(image))
            .with_context(|| format!("--image {image}: not a usable path"))?;
        let path = path.display().to_string();
        return Ok(if is_iso(&path) {
            ImageChoice::Iso(path)
        } else {
            ImageChoice::Disk(path)
        });
    }
    let images = ctx
        .daemon
        .node()
        .list_images(())
        .await
        .or_fail(&ctx.daemon)?
        .images;
    let exact = images.iter().find(|i| i.name == image);
    let by_id: Vec<_> = images.iter().filter(|i| i.image_id == image).collect();
    let found = match (exact, by_id.as_slice()) {
        (Some(i), _) => i,
        (None, [i]) => *i,
        (None, []) => bail!(
            "no image {image:?} in the node's library: lqctl image list shows them, lqctl image import FILE|URL adds one"
        ),
        (None, many) => bail!(
            "image {image:?} is ambiguous ({}): use the full name",
            many.iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Ok(if found.format == "iso" {
        ImageChoice::Iso(found.path.clone())
    } else {
        ImageChoice::Disk(found.path.clone())
    })
}

/// How the VM gets provisioned, from the flags.
#[derive(Debug, Default, PartialEq)]
pub struct Provisioning {
    /// The four documents, when any is given or must be built (`--ip`).
    pub cloud_init: Option<CloudInitConfig>,
    /// Inputs of the daemon's default seed (user, keys, password) when only those are given.
    pub default_seed: Option<DefaultSeedOptions>,
}

fn read_password(path: &Path) -> anyhow::Result<String> {
    let pw = read_text("--password-file", path)?;
    let pw = pw.trim_end_matches(['\n', '\r']);
    if pw.is_empty() {
        bail!("--password-file {} is empty", path.display());
    }
    Ok(pw.to_owned())
}

/// Decides provisioning: no cloud-init flag → nothing (the daemon's default seed); only
/// `--ssh-key/--user/--password-file` → the daemon's default seed with those inputs; any document
/// or `--ip` → the documents, with user-data built by the seed engine's `DefaultUserData` when
/// `--user-data` is absent and network-config by its generator for `--ip`.
fn provisioning(
    a: &CreateArgs,
    keys: &[String],
    first_mac: Option<&str>,
) -> anyhow::Result<Provisioning> {
    let read =
        |flag: &str, p: &Option<PathBuf>| p.as_deref().map(|p| read_text(flag, p)).transpose();
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
            default_seed: Some(DefaultSeedOptions {
                user: a.user.clone().unwrap_or_default(),
                ssh_authorized_keys: keys.to_vec(),
                password: a
                    .password_file
                    .as_deref()
                    .map(read_password)
                    .transpose()?
                    .unwrap_or_default(),
            }),
        });
    }
    let mut cfg = CloudInitConfig {
        user_data: read("--user-data", &a.user_data)?.unwrap_or_default(),
        meta_data: read("--meta-data", &a.meta_data)?.unwrap_or_default(),
        network_config: read("--network-config", &a.network_config)?.unwrap_or_default(),
        vendor_data: read("--vendor-data", &a.vendor_data)?.unwrap_or_default(),
    };
    if a.user_data.is_none() {
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
        cfg.user_data = String::from_utf8(yaml).context("user-data is not UTF-8")?;
    }
    if let Some(ip) = &a.ip
        && a.network_config.is_none()
    {
        let mac = first_mac.ok_or_else(|| anyhow!("--ip needs a NIC"))?;
        cfg.network_config = static_network_config(mac, ip, a.gateway.as_deref(), &a.dns)?;
    }
    Ok(Provisioning {
        cloud_init: Some(cfg),
        default_seed: None,
    })
}

/// The network-config of `--ip/--gateway/--dns`: a static address on the first NIC, matched by
/// its MAC, built by the seed engine's generator.
pub fn static_network_config(
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

/// Builds the request from the flags (no daemon calls besides the image lookup); also says
/// whether the VM installs from an ISO (then no cloud-init runs and `--wait` waits for running).
async fn build(ctx: &Ctx, a: &CreateArgs) -> anyhow::Result<(CreateVmOnNodeRequest, bool)> {
    let keys = ssh_keys(&a.ssh_keys)?;
    let vm_id = uuid::Uuid::new_v4().to_string();
    let mut nics = if a.nics.is_empty() {
        vec![parse_nic("user", 0)?]
    } else {
        a.nics
            .iter()
            .enumerate()
            .map(|(i, s)| parse_nic(s, i))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    if a.ip.is_some() && nics[0].mac_address.is_empty() {
        nics[0].mac_address = random_mac();
    }
    let mut labels: HashMap<String, String> = HashMap::new();
    for l in &a.labels {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| anyhow!("--label {l:?}: write KEY=VALUE"))?;
        labels.insert(k.to_owned(), v.to_owned());
    }
    let first_user_mode =
        nics[0].bridge.is_empty() && matches!(nics[0].network.as_str(), "" | "user");
    let local =
        !ctx.daemon.address().starts_with("https://") && !ctx.daemon.address().starts_with("tcp:");
    let ssh_port = match a.ssh_port.as_deref() {
        Some("off") => None,
        Some("auto") => Some(free_port()?),
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| anyhow!("--ssh-port {p:?}: give a port (1-65535), auto or off"))?,
        ),
        None if !keys.is_empty() && first_user_mode && local => Some(free_port()?),
        None => None,
    };
    if let Some(port) = ssh_port {
        if !first_user_mode {
            bail!("--ssh-port needs the first NIC to be user-mode (--nic user)");
        }
        nics[0].port_forwards.push(PortForward {
            protocol: "tcp".into(),
            host_address: "127.0.0.1".into(),
            host_port: u32::from(port),
            guest_port: 22,
        });
        let user = a
            .user
            .as_deref()
            .unwrap_or(limiquantix_cloudinit::userdata::DEFAULT_USER);
        labels.insert(SSH_LABEL.into(), format!("{user}@127.0.0.1:{port}"));
    }
    let image = choose_image(ctx, &a.image).await?;
    let from_iso = matches!(image, ImageChoice::Iso(_));
    let (disks, cdroms) = match image {
        ImageChoice::Disk(backing_file) => (
            vec![DiskSpec {
                id: "disk-0".into(),
                backing_file,
                size_gib: a.disk_size.unwrap_or(0),
                bootable: true,
                ..Default::default()
            }],
            vec![],
        ),
        ImageChoice::Iso(iso_path) => (
            vec![DiskSpec {
                id: "disk-0".into(),
                size_gib: a.disk_size.unwrap_or(ISO_DISK_GIB),
                ..Default::default()
            }],
            vec![CdromSpec {
                id: "cdrom-0".into(),
                iso_path,
                bootable: true,
            }],
        ),
    };
    let first_mac = nics
        .first()
        .map(|n| n.mac_address.clone())
        .filter(|m| !m.is_empty());
    let provisioning = provisioning(a, &keys, first_mac.as_deref())?;
    let spec = VmSpec {
        cpu_cores: a.cpus,
        cpu_sockets: 1,
        cpu_threads_per_core: 1,
        memory_mib: a.memory,
        firmware: match a.firmware {
            FirmwareArg::Bios => Firmware::Bios,
            FirmwareArg::Uefi => Firmware::Uefi,
            FirmwareArg::Auto => Firmware::Auto,
        } as i32,
        disks,
        cdroms,
        nics,
        cloud_init: provisioning.cloud_init,
        default_seed: provisioning.default_seed,
        ..Default::default()
    };
    let request = CreateVmOnNodeRequest {
        vm_id,
        name: a.name.clone(),
        spec: Some(spec),
        labels: labels.into_iter().collect(),
    };
    Ok((request, from_iso))
}

/// Runs `vm create`.
pub async fn run(ctx: &Ctx, a: CreateArgs) -> anyhow::Result<()> {
    // VMs are named on the command line by name: two with the same name would make it ambiguous.
    if let Some(other) = crate::vm::list_vms(ctx)
        .await?
        .iter()
        .find(|v| v.name == a.name)
    {
        bail!(
            "a VM named {} already exists ({}): choose another name, or delete it first (lqctl vm delete {})",
            a.name,
            other.vm_id,
            a.name
        );
    }
    let (request, from_iso) = build(ctx, &a).await?;
    let mut node = ctx.daemon.node();
    let created = node
        .create_vm(request)
        .await
        .or_fail(&ctx.daemon)
        .map_err(|e| {
            // A path outside the daemon's image directories: importing it is the way in.
            if a.image.contains('/') && e.to_string().contains("outside the allowed directories") {
                anyhow!(
                    "{e}; import it into the library first: lqctl image import {}",
                    a.image
                )
            } else {
                e
            }
        })?;
    let vm_id = created.vm_id.clone();
    if !(a.start || a.wait) {
        match ctx.format {
            Format::Table => println!("{}  created  {vm_id}", a.name),
            f => print_structured(
                &serde_json::json!({ "id": vm_id, "name": a.name, "result": "created" }),
                f,
            )?,
        }
        return Ok(());
    }
    node.start_vm(VmIdRequest {
        vm_id: vm_id.clone(),
    })
    .await
    .or_fail(&ctx.daemon)
    .map_err(|e| anyhow!("VM {} was created ({vm_id}) but did not start: {e}", a.name))?;
    let vm = crate::vm::status(ctx, &vm_id).await?;
    if !a.wait {
        match ctx.format {
            Format::Table => println!("{}  created and started  {vm_id}", a.name),
            _ => wait::print_summary(ctx, &vm, None),
        }
        return Ok(());
    }
    let until = if from_iso {
        WaitFor::Running
    } else {
        WaitFor::Ready
    };
    let r = wait::wait(ctx, &vm, until, a.timeout).await?;
    wait::print_summary(ctx, &r.vm, Some((&r.label, r.took)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nic_specs() {
        let n = parse_nic("user,forward=2222:22,forward=udp:5353:53,model=e1000", 0).unwrap();
        assert_eq!((n.id.as_str(), n.network.as_str()), ("net0", "user"));
        assert_eq!(n.model, NicModel::E1000 as i32);
        assert_eq!(n.port_forwards.len(), 2);
        assert_eq!(
            (
                n.port_forwards[1].protocol.as_str(),
                n.port_forwards[1].guest_port
            ),
            ("udp", 53)
        );
        let n = parse_nic("bridge=br0,mac=52:54:00:AA:BB:CC", 1).unwrap();
        assert_eq!(
            (n.bridge.as_str(), n.mac_address.as_str()),
            ("br0", "52:54:00:aa:bb:cc")
        );
        assert!(
            parse_nic("bridge=br0,forward=1:2", 0)
                .unwrap_err()
                .to_string()
                .contains("user-mode")
        );
        assert!(parse_nic("user,model=ne2k", 0).is_err());
        assert!(parse_nic("user,forward=99999:22", 0).is_err());
        assert!(parse_nic("wifi", 0).is_err());
    }

    #[test]
    fn ssh_keys_from_files_and_literals() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("id.pub");
        std::fs::write(&f, "# comment\nssh-ed25519 AAAA a@b\n\nssh-rsa BBBB c@d\n").unwrap();
        let keys = ssh_keys(&[f.display().to_string(), "ssh-ed25519 CCCC e@f".into()]).unwrap();
        assert_eq!(
            keys,
            [
                "ssh-ed25519 AAAA a@b",
                "ssh-rsa BBBB c@d",
                "ssh-ed25519 CCCC e@f"
            ]
        );
        let private = dir.path().join("id");
        std::fs::write(&private, "-----BEGIN OPENSSH PRIVATE KEY-----\n").unwrap();
        let err = ssh_keys(&[private.display().to_string()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("private key"), "{err}");
        assert!(ssh_keys(&[dir.path().join("none").display().to_string()]).is_err());
    }

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

    #[test]
    fn random_macs_are_local_qemu_macs() {
        let m = random_mac();
        assert!(m.starts_with("52:54:00:") && m.len() == 17, "{m}");
    }
}
