//! `-netdev` and NIC `-device` JSON.

use serde_json::{Value, json};

use super::boot::{BootDevice, BootEntry, index_of};
use super::common::Argv;
use limiquantix_vm::model::{MacAddr, NicNetwork, NicSpec, VmDefinition};

/// Emits a `-netdev` and a NIC `-device` per NIC.
pub(super) fn network(a: &mut Argv, def: &VmDefinition, order: &[BootEntry]) {
    for (i, n) in def.nics.iter().enumerate() {
        a.json("-netdev", netdev(n));
        let mac = n.mac.unwrap_or_else(|| MacAddr::derive(&def.id, i));
        let bi = index_of(order, BootDevice::Nic, &n.id);
        let mut dev = nic_device(n, mac, bi);
        if i > 0
            && let Some(port) = super::ports::own_port(a, def, &n.id, 120 + i as u16)
        {
            dev["bus"] = port.into();
        }
        a.json("-device", dev);
    }
}

/// The `-netdev` value of a NIC (id `<nic id>-net`).
pub(super) fn netdev(nic: &NicSpec) -> Value {
    let id = format!("{}-net", nic.id);
    match &nic.network {
        NicNetwork::User { port_forwards } => {
            // Every part of the rule is a typed value (protocol enum, IPv4 address, u16 ports),
            // so the rule string cannot carry anything else.
            let fwd: Vec<Value> = port_forwards
                .iter()
                .map(|p| {
                    json!({ "str": format!(
                        "{}:{}:{}-:{}",
                        p.protocol.as_str(),
                        p.host_addr,
                        p.host_port,
                        p.guest_port
                    ) })
                })
                .collect();
            let mut v = json!({ "type": "user", "id": id });
            if !fwd.is_empty() {
                v["hostfwd"] = fwd.into();
            }
            v
        }
        NicNetwork::Tap { ifname } => json!({
            "type": "tap",
            "id": id,
            "ifname": ifname,
            "script": "no",
            "downscript": "no",
        }),
        NicNetwork::Bridge { name } => json!({ "type": "bridge", "id": id, "br": name }),
    }
}

/// The NIC's `-device` value. Without network boot the option ROM is removed (`romfile: ""`), so
/// the firmware never falls into iPXE.
pub(super) fn nic_device(nic: &NicSpec, mac: MacAddr, bootindex: Option<u16>) -> Value {
    let mut v = json!({
        "driver": nic.model.qemu_driver(),
        "id": nic.id,
        "netdev": format!("{}-net", nic.id),
        "mac": mac.to_string(),
    });
    match bootindex {
        Some(i) => v["bootindex"] = i.into(),
        None => v["romfile"] = "".into(),
    }
    v
}
