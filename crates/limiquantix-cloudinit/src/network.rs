//! network-config version 2 generated from NIC descriptions.
//!
//! Each NIC becomes one `ethernets` entry matched by MAC address and renamed with `set-name`
//! (default `eth<N>`): cloud-init's non-netplan renderers (networkd, ENI, sysconfig) match on
//! both MAC and name, so a stable name is needed for the match to work everywhere. DHCPv4 is on
//! unless static addresses are given. Gateways are written as `gateway4`/`gateway6`, which every
//! cloud-init renderer handles (older cloud-init mis-renders IPv6 default `routes`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::error::{SeedError, ValidationError};
use crate::userdata::emit_yaml;
use crate::validate::validate_fqdn;

/// An IP address with a prefix length, such as `10.0.0.5/24` or `fd00::5/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpCidr {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length (0–32 for IPv4, 0–128 for IPv6).
    pub prefix: u8,
}

impl FromStr for IpCidr {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ValidationError::new(
                "network address",
                format!("{s:?} is not an address with a prefix"),
                "ADDRESS/PREFIX such as 10.0.0.5/24 or fd00::5/64",
            )
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpCidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One guest NIC as the network-config should set it up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NicConfig {
    /// MAC address (`52:54:00:12:34:56`; any case, `-` or `:` separated).
    pub mac: String,
    /// Guest interface name to give it (`set-name`); default `eth<index>`.
    pub name: Option<String>,
    /// Static addresses; when empty, DHCPv4 is used.
    pub addresses: Vec<IpCidr>,
    /// IPv4 default gateway.
    pub gateway4: Option<IpAddr>,
    /// IPv6 default gateway.
    pub gateway6: Option<IpAddr>,
    /// DNS servers.
    pub nameservers: Vec<IpAddr>,
    /// DNS search domains.
    pub search: Vec<String>,
    /// Also run DHCPv6.
    pub dhcp6: bool,
}

impl NicConfig {
    /// A NIC with this MAC address, on DHCP.
    pub fn dhcp(mac: impl Into<String>) -> Self {
        Self {
            mac: mac.into(),
            ..Self::default()
        }
    }
}

/// A version 2 network-config document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkConfig {
    version: u8,
    ethernets: BTreeMap<String, Ethernet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Ethernet {
    #[serde(rename = "match")]
    matches: MacMatch,
    #[serde(rename = "set-name")]
    set_name: String,
    dhcp4: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dhcp6: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<IpCidr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway4: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway6: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nameservers: Option<Nameservers>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct MacMatch {
    macaddress: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Nameservers {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<IpAddr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    search: Vec<String>,
}

impl NetworkConfig {
    /// Builds the document, checking MACs, names, gateway families and search domains.
    pub fn from_nics(nics: &[NicConfig]) -> Result<Self, ValidationError> {
        let mut ethernets = BTreeMap::new();
        let mut macs = std::collections::BTreeSet::new();
        for (i, nic) in nics.iter().enumerate() {
            let field = format!("nics.{i}");
            let mac = normalize_mac(&nic.mac).map_err(|e| e.at_path(format!("{field}.mac")))?;
            if !macs.insert(mac.clone()) {
                return Err(ValidationError::new(
                    "network",
                    format!("MAC address {mac} is used twice"),
                    "one NIC per MAC address",
                )
                .at_path(format!("{field}.mac")));
            }
            let name = nic.name.clone().unwrap_or_else(|| format!("eth{i}"));
            validate_ifname(&name).map_err(|e| e.at_path(format!("{field}.name")))?;
            check_family(nic.gateway4, true, &format!("{field}.gateway4"))?;
            check_family(nic.gateway6, false, &format!("{field}.gateway6"))?;
            for domain in &nic.search {
                validate_fqdn(domain).map_err(|e| e.at_path(format!("{field}.search")))?;
            }
            let nameservers =
                (!nic.nameservers.is_empty() || !nic.search.is_empty()).then(|| Nameservers {
                    addresses: nic.nameservers.clone(),
                    search: nic.search.clone(),
                });
            let entry = Ethernet {
                matches: MacMatch { macaddress: mac },
                set_name: name.clone(),
                dhcp4: nic.addresses.is_empty(),
                dhcp6: nic.dhcp6,
                addresses: nic.addresses.clone(),
                gateway4: nic.gateway4,
                gateway6: nic.gateway6,
                nameservers,
            };
            if ethernets.insert(name.clone(), entry).is_some() {
                return Err(ValidationError::new(
                    "network",
                    format!("interface name {name:?} is used twice"),
                    "a distinct name per NIC",
                )
                .at_path(format!("{field}.name")));
            }
        }
        Ok(Self {
            version: 2,
            ethernets,
        })
    }

    /// The document as YAML (read back unchanged by PyYAML).
    pub fn to_yaml(&self) -> Result<Vec<u8>, SeedError> {
        Ok(emit_yaml(self)?.into_bytes())
    }
}

fn check_family(gateway: Option<IpAddr>, v4: bool, path: &str) -> Result<(), ValidationError> {
    match gateway {
        Some(g) if g.is_ipv4() != v4 => Err(ValidationError::new(
            "network",
            format!("gateway {g} is of the wrong address family"),
            if v4 {
                "an IPv4 address for gateway4"
            } else {
                "an IPv6 address for gateway6"
            },
        )
        .at_path(path)),
        _ => Ok(()),
    }
}

/// `52-54-00-AB-cd-ef` -> `52:54:00:ab:cd:ef`.
fn normalize_mac(mac: &str) -> Result<String, ValidationError> {
    let parts: Vec<&str> = mac.split([':', '-']).collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(parts.join(":").to_ascii_lowercase())
    } else {
        Err(ValidationError::new(
            "network",
            format!("{mac:?} is not a MAC address"),
            "six two-digit hex octets such as 52:54:00:12:34:56",
        ))
    }
}

/// A Linux interface name: 1 to 15 characters from `a-z A-Z 0-9 _ . -`.
fn validate_ifname(name: &str) -> Result<(), ValidationError> {
    let ok = (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "network",
            format!("{name:?} is not a valid interface name"),
            "1 to 15 characters from a-z A-Z 0-9 _ . -",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dhcp_and_static() {
        let nics = [
            NicConfig::dhcp("52:54:00:12:34:56"),
            NicConfig {
                mac: "52-54-00-AB-CD-EF".into(),
                name: Some("lan".into()),
                addresses: vec![
                    "10.0.0.5/24".parse().unwrap(),
                    "fd00::5/64".parse().unwrap(),
                ],
                gateway4: Some("10.0.0.1".parse().unwrap()),
                gateway6: Some("fd00::1".parse().unwrap()),
                nameservers: vec!["1.1.1.1".parse().unwrap()],
                search: vec!["example.com".into()],
                dhcp6: false,
            },
        ];
        let yaml =
            String::from_utf8(NetworkConfig::from_nics(&nics).unwrap().to_yaml().unwrap()).unwrap();
        assert!(yaml.starts_with("version: 2\nethernets:\n"), "{yaml}");
        assert!(
            yaml.contains("macaddress: 52:54:00:ab:cd:ef")
                || yaml.contains("macaddress: '52:54:00:ab:cd:ef'")
                || yaml.contains("macaddress: \"52:54:00:ab:cd:ef\""),
            "{yaml}"
        );
        assert!(
            crate::validate::validate_network_config(yaml.as_bytes())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn refuses_bad_input() {
        assert!(NetworkConfig::from_nics(&[NicConfig::dhcp("52:54:00:12:34")]).is_err());
        let dup = [
            NicConfig::dhcp("52:54:00:12:34:56"),
            NicConfig::dhcp("52:54:00:12:34:56"),
        ];
        assert!(NetworkConfig::from_nics(&dup).is_err());
        let wrong = NicConfig {
            gateway4: Some("fd00::1".parse().unwrap()),
            ..NicConfig::dhcp("52:54:00:12:34:56")
        };
        let e = NetworkConfig::from_nics(&[wrong]).unwrap_err();
        assert_eq!(e.path.as_deref(), Some("nics.0.gateway4"));
        assert!("10.0.0.1/33".parse::<IpCidr>().is_err());
        assert!("10.0.0.1".parse::<IpCidr>().is_err());
    }
}
