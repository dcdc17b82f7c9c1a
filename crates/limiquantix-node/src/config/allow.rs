//! The allow-list of the plaintext listeners: IPv4 and IPv6 networks (`10.0.0.0/24`,
//! `fd00::/8`) and bare addresses (`10.0.0.2`, `::1`).

use serde::Serialize;
use std::net::IpAddr;

/// One allowed network: an address and a prefix length. A bare address is a /32 (IPv4) or
/// /128 (IPv6). Host bits past the prefix are cleared (`10.0.0.5/24` is `10.0.0.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network. An IPv4 peer seen on an IPv6 socket
    /// (`::ffff:10.0.0.2`) is matched as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    /// Whether this network is every address of its family (`0.0.0.0/0`, `::/0`).
    pub fn is_everything(&self) -> bool {
        self.prefix == 0
    }

    /// The network of one address.
    pub fn host(ip: IpAddr) -> Self {
        let ip = ip.to_canonical();
        Cidr {
            network: ip,
            prefix: if ip.is_ipv4() { 32 } else { 128 },
        }
    }
}

fn mask_v4(ip: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        ip & (u32::MAX << (32 - u32::from(prefix)))
    }
}

fn mask_v6(ip: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        ip & (u128::MAX << (128 - u32::from(prefix)))
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{s:?} is not an IP address or network (e.g. 10.0.0.2, 10.0.0.0/24, fd00::/8, ::1)"
            )
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip = addr.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("{s:?}: the prefix length must be 0 to {max}")),
            },
        };
        let network = match ip {
            IpAddr::V4(v4) => IpAddr::V4(mask_v4(u32::from(v4), prefix).into()),
            IpAddr::V6(v6) => IpAddr::V6(mask_v6(u128::from(v6), prefix).into()),
        };
        Ok(Cidr { network, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
}

/// The allow-list as one line for logs: `10.0.0.2/32, fd00::/8`.
pub fn describe(list: &[Cidr]) -> String {
    list.iter()
        .map(Cidr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_and_addresses() {
        assert_eq!(cidr("10.0.0.2").to_string(), "10.0.0.2/32");
        assert_eq!(cidr("10.0.0.5/24").to_string(), "10.0.0.0/24");
        assert_eq!(cidr("fd00::1/8").to_string(), "fd00::/8");
        assert_eq!(cidr("::1").to_string(), "::1/128");
        assert_eq!(cidr("::ffff:10.1.2.3").to_string(), "10.1.2.3/32");
        assert!(cidr("10.0.0.0/24").contains(ip("10.0.0.255")));
        assert!(!cidr("10.0.0.0/24").contains(ip("10.0.1.0")));
        assert!(cidr("10.0.0.2").contains(ip("::ffff:10.0.0.2")), "mapped");
        assert!(!cidr("10.0.0.2").contains(ip("10.0.0.3")));
        assert!(cidr("fd00::/8").contains(ip("fdff::1")));
        assert!(!cidr("fd00::/8").contains(ip("fe80::1")));
        assert!(
            !cidr("fd00::/8").contains(ip("10.0.0.1")),
            "families differ"
        );
        assert!(cidr("0.0.0.0/0").contains(ip("192.0.2.1")));
        assert!(cidr("0.0.0.0/0").is_everything());
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(!cidr("::/0").contains(ip("192.0.2.1")));
        assert_eq!(Cidr::host(ip("::ffff:10.0.0.9")), cidr("10.0.0.9"));
    }

    #[test]
    fn bad_values_say_what_is_allowed() {
        for bad in [
            "",
            "10.0.0",
            "host.example",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/x",
        ] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(
                err.contains("e.g.") || err.contains("prefix length"),
                "{bad}: {err}"
            );
        }
    }
}
