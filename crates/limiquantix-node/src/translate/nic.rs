//! NICs of a CreateVM request: MAC, model, network (user-mode, tap or bridge) and the port
//! forwards of user-mode networking.

use super::fields::{device_ids, enum_value};
use crate::error::ApiError;
use limiquantix_proto::v1 as pb;
use limiquantix_vm::model::{self as m, MacAddr, NicNetwork, PortForward, Protocol};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// Checks NIC `i` of the request and builds its model.
pub(super) fn nic(
    i: usize,
    n: &pb::NicSpec,
    networks: &BTreeMap<String, String>,
    default_network: Option<&str>,
) -> Result<(m::NicSpec, Option<String>), ApiError> {
    nic_at(&format!("spec.nics[{i}]"), i, n, networks, default_network)
}

/// [`nic`] for the NIC at wire field `f` (AttachNIC's `nic`), numbered `i` when it needs a
/// generated id.
pub(super) fn nic_at(
    f: &str,
    i: usize,
    n: &pb::NicSpec,
    networks: &BTreeMap<String, String>,
    default_network: Option<&str>,
) -> Result<(m::NicSpec, Option<String>), ApiError> {
    let f = f.to_string();
    let (id, api_id) = device_ids(&f, &n.id, "nic", i)?;
    let mac = if n.mac_address.is_empty() {
        None
    } else {
        Some(
            MacAddr::parse(&n.mac_address)
                .map_err(|e| ApiError::invalid(format!("{f}.mac_address"), e.to_string()))?,
        )
    };
    let model = nic_model(&f, n.model)?;
    if n.bandwidth_mbps != 0 {
        return Err(ApiError::invalid(
            format!("{f}.bandwidth_mbps"),
            "bandwidth limits are not supported on this node; leave it 0",
        ));
    }
    let port_forwards = n
        .port_forwards
        .iter()
        .enumerate()
        .map(|(j, p)| port_forward(&format!("{f}.port_forwards[{j}]"), p))
        .collect::<Result<Vec<_>, _>>()?;
    let network = match networks.get(&n.network) {
        Some(bridge) if n.bridge.is_empty() => bridged(bridge, port_forwards),
        _ => network(&f, n, port_forwards, default_network)?,
    };
    Ok((
        m::NicSpec {
            id,
            mac,
            model,
            network,
        },
        api_id,
    ))
}

/// The model NIC model of wire field `{f}.model`. The LimiQuantix control plane casts its own
/// model enum to ours by number, so 3 (its VMXNET3) also arrives; it gets virtio, the model
/// every cloud image has a driver for.
fn nic_model(f: &str, model: i32) -> Result<m::NicModel, ApiError> {
    /// The control plane's VMXNET3, cast to our enum.
    const CAST_VMXNET3: i32 = 3;
    if model == CAST_VMXNET3 {
        return Ok(m::NicModel::Virtio);
    }
    let model = enum_value::<pb::NicModel>(
        &format!("{f}.model"),
        model,
        "0 VIRTIO, 1 E1000, 2 RTL8139 (3 is taken as VIRTIO)",
    )?;
    Ok(match model {
        pb::NicModel::Virtio => m::NicModel::Virtio,
        pb::NicModel::E1000 => m::NicModel::E1000,
        pb::NicModel::Rtl8139 => m::NicModel::Rtl8139,
    })
}

/// Checks the port forward at wire field `pf`: protocol (tcp by default), IPv4 host address
/// (loopback by default) and both ports.
fn port_forward(pf: &str, p: &pb::PortForward) -> Result<PortForward, ApiError> {
    let protocol = match p.protocol.as_str() {
        "" | "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        other => {
            return Err(ApiError::invalid(
                format!("{pf}.protocol"),
                format!("{other:?} is not a protocol (allowed: tcp, udp)"),
            ));
        }
    };
    let host_addr = if p.host_address.is_empty() {
        Ipv4Addr::LOCALHOST
    } else {
        p.host_address.parse().map_err(|_| {
            ApiError::invalid(
                format!("{pf}.host_address"),
                format!("{:?} is not an IPv4 address", p.host_address),
            )
        })?
    };
    Ok(PortForward {
        protocol,
        host_addr,
        host_port: port(pf, "host_port", p.host_port)?,
        guest_port: port(pf, "guest_port", p.guest_port)?,
    })
}

/// Checks port field `{pf}.{name}`: 1 to 65535.
fn port(pf: &str, name: &str, v: u32) -> Result<u16, ApiError> {
    u16::try_from(v).ok().filter(|&v| v != 0).ok_or_else(|| {
        ApiError::invalid(
            format!("{pf}.{name}"),
            format!("{v} is not a port (1 to 65535)"),
        )
    })
}

/// The network of NIC `f`: a bridge when `bridge` is set, a tap device for `tap:IFNAME`,
/// user-mode networking (the only kind with port forwards) for an empty network, `user`, or a
/// network this node does not know.
fn network(
    f: &str,
    n: &pb::NicSpec,
    port_forwards: Vec<PortForward>,
    default_network: Option<&str>,
) -> Result<NicNetwork, ApiError> {
    if !n.bridge.is_empty() {
        if !n.network.is_empty() || !port_forwards.is_empty() {
            return Err(ApiError::invalid(
                format!("{f}.bridge"),
                "a bridged NIC takes neither network nor port_forwards",
            ));
        }
        Ok(NicNetwork::Bridge {
            name: n.bridge.clone(),
        })
    } else if let Some(ifname) = n.network.strip_prefix("tap:") {
        if !port_forwards.is_empty() {
            return Err(ApiError::invalid(
                format!("{f}.port_forwards"),
                "port forwards exist only on user-mode networking",
            ));
        }
        Ok(NicNetwork::Tap {
            ifname: ifname.into(),
        })
    } else if n.network.is_empty() || n.network == "user" {
        Ok(NicNetwork::User { port_forwards })
    } else {
        // A network this node does not know (a control plane's network UUID): the default
        // network, user-mode NAT without one, said once per network.
        if unknown_network_first_seen(&n.network) {
            tracing::warn!(
                network = %n.network,
                default = default_network.unwrap_or("user-mode NAT"),
                "unknown network: its NICs join the default network"
            );
        }
        Ok(match default_network {
            Some(bridge) => bridged(bridge, port_forwards),
            None => NicNetwork::User { port_forwards },
        })
    }
}

/// A NIC on host bridge `bridge` (`user`: user-mode NAT with its port forwards; a bridge has
/// none).
fn bridged(bridge: &str, port_forwards: Vec<PortForward>) -> NicNetwork {
    if bridge == "user" {
        NicNetwork::User { port_forwards }
    } else {
        NicNetwork::Bridge {
            name: bridge.to_string(),
        }
    }
}

/// Whether `network` is seen here for the first time since the daemon started.
fn unknown_network_first_seen(network: &str) -> bool {
    static SEEN: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    // Bounded: a flood of distinct names is logged for the first 1024 only.
    seen.len() < 1024 && seen.insert(network.to_string())
}
