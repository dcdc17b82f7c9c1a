//! The NICs of `vm create`: `--nic` specs, port forwards, the MAC `--ip` needs and the SSH port.

use anyhow::{Context as _, anyhow};
use limiquantix_proto::v1::{NicModel, NicSpec, PortForward};

/// The NICs of `--nic` (one user-mode NIC when none is given). With `static_ip` (`--ip`) the
/// first NIC gets a random MAC when it has none: the network-config matches it by its MAC.
pub(super) fn nics(specs: &[String], static_ip: bool) -> anyhow::Result<Vec<NicSpec>> {
    let mut nics = if specs.is_empty() {
        vec![parse_nic("user", 0)?]
    } else {
        specs
            .iter()
            .enumerate()
            .map(|(i, s)| parse_nic(s, i))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    if static_ip && nics[0].mac_address.is_empty() {
        nics[0].mac_address = random_mac();
    }
    Ok(nics)
}

/// Whether a NIC uses QEMU's user-mode networking, the only kind that forwards ports.
pub(super) fn is_user_mode(nic: &NicSpec) -> bool {
    nic.bridge.is_empty() && matches!(nic.network.as_str(), "" | "user")
}

/// Parses `--nic` specs.
pub(super) fn parse_nic(spec: &str, index: usize) -> anyhow::Result<NicSpec> {
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
    if !nic.port_forwards.is_empty() && !is_user_mode(&nic) {
        return Err(bad("forward= works only on user-mode NICs".into()));
    }
    Ok(nic)
}

/// Parses the value of a `forward=` option: `[tcp|udp:]HOSTPORT:GUESTPORT`, on 127.0.0.1.
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

/// The host port to forward to the guest's SSH port, from `--ssh-port` (`flag`): a port, `auto`
/// (a free one) or `off`. Without the flag, a free port when there are keys to log in with
/// (`keys`), the first NIC is user-mode and the daemon runs on this host (`local`).
pub(super) fn ssh_port(
    flag: Option<&str>,
    keys: bool,
    first_user_mode: bool,
    local: bool,
) -> anyhow::Result<Option<u16>> {
    Ok(match flag {
        Some("off") => None,
        Some("auto") => Some(free_port()?),
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| anyhow!("--ssh-port {p:?}: give a port (1-65535), auto or off"))?,
        ),
        None if keys && first_user_mode && local => Some(free_port()?),
        None => None,
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
    fn random_macs_are_local_qemu_macs() {
        let m = random_mac();
        assert!(m.starts_with("52:54:00:") && m.len() == 17, "{m}");
    }
}
