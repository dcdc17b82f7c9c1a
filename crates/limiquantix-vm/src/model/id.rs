//! Identifiers: the VM id, VM names, device ids and MAC addresses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A VM id: a lowercase hyphenated UUID (`8-4-4-4-12` hex digits).
///
/// The id names the VM's directories on disk, so anything else (`../../etc`, upper case,
/// braces, a URN) is refused when parsed or deserialized.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VmId(String);

/// Why a string is not a [`VmId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a VM id: expected a lowercase hyphenated UUID \
     (8-4-4-4-12 hex digits, e.g. 0b6f3a52-8d1e-4c55-9a7e-2f1c0e9d4b21)"
)]
pub struct VmIdError {
    /// The refused input (truncated to 80 characters).
    pub value: String,
}

impl VmId {
    /// Parses and validates an id.
    pub fn parse(s: &str) -> Result<Self, VmIdError> {
        if is_lower_hyphenated_uuid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(VmIdError {
                value: s.chars().take(80).collect(),
            })
        }
    }

    /// A fresh random (version 4) id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_lower_hyphenated_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

impl FromStr for VmId {
    type Err = VmIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for VmId {
    type Error = VmIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<VmId> for String {
    fn from(id: VmId) -> Self {
        id.0
    }
}

impl AsRef<str> for VmId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VmId({})", self.0)
    }
}

/// Checks a VM name: 1–63 characters, `[A-Za-z0-9][A-Za-z0-9._-]*`.
///
/// Returns the reason when the name is refused. Names end up in QEMU's `-name`, in log lines and
/// in the guest's hostname, so commas, quotes, spaces and newlines are refused.
pub fn check_vm_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!(
            "{name:?} must be 1 to 63 characters long (it has {})",
            name.chars().count()
        ));
    }
    let mut chars = name.chars();
    let first = chars.next().unwrap_or(' ');
    if !first.is_ascii_alphanumeric() {
        return Err(format!("{name:?} must start with a letter or a digit"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{name:?} contains {bad:?}; allowed are letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Whether `name` is a plain name, the rule for volume and pool ids: 1 to 64 ASCII letters,
/// digits, `.`, `_` and `-`, not starting with `.` (so a UUID is one, and `/`, `..` and hidden
/// files are not).
pub fn is_plain_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

/// Checks a device id (disk, CD-ROM or NIC): 1–20 characters, `[a-z][a-z0-9-]*`.
///
/// Device ids become QEMU device ids and block node names (which QEMU limits to 31 bytes), so
/// they are short and start with a letter.
pub fn check_device_id(id: &str) -> Result<(), String> {
    let ok = (1..=20).contains(&id.len())
        && id.as_bytes()[0].is_ascii_lowercase()
        && id
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not a device id: use 1 to 20 characters, a lowercase letter first, \
             then lowercase letters, digits or '-'"
        ))
    }
}

/// A unicast Ethernet MAC address, written `52:54:00:12:34:56` (lowercase on output).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddr(pub [u8; 6]);

/// Why a string is not a [`MacAddr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a unicast MAC address: expected six hex pairs like 52:54:00:12:34:56{why}"
)]
pub struct MacAddrError {
    /// The refused input.
    pub value: String,
    why: &'static str,
}

impl MacAddr {
    /// The prefix QEMU uses for its own MACs (locally administered, unicast).
    pub const QEMU_PREFIX: [u8; 3] = [0x52, 0x54, 0x00];

    /// The stable MAC of NIC number `index` of VM `vm`: the QEMU prefix followed by three bytes
    /// of a hash of the VM id and the index. The same inputs always give the same address.
    pub fn derive(vm: &VmId, index: usize) -> Self {
        // FNV-1a 64: stable across Rust versions and platforms, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in vm.as_str().bytes().chain((index as u64).to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let t = h.to_be_bytes();
        let p = Self::QEMU_PREFIX;
        Self([p[0], p[1], p[2], t[0] ^ t[3], t[1] ^ t[4], t[2] ^ t[5]])
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (either case); multicast addresses are refused.
    pub fn parse(s: &str) -> Result<Self, MacAddrError> {
        let err = |why| MacAddrError {
            value: s.chars().take(40).collect(),
            why,
        };
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
            return Err(err(""));
        }
        let mut out = [0u8; 6];
        for (o, p) in out.iter_mut().zip(parts) {
            *o = u8::from_str_radix(p, 16).map_err(|_| err(""))?;
        }
        if out[0] & 1 == 1 {
            return Err(err(" (this one is multicast: the first octet is odd)"));
        }
        Ok(Self(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl FromStr for MacAddr {
    type Err = MacAddrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for MacAddr {
    type Error = MacAddrError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<MacAddr> for String {
    fn from(m: MacAddr) -> Self {
        m.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b6f3a52-8d1e-4c55-9a7e-2f1c0e9d4b21";

    #[test]
    fn vm_id_accepts_lowercase_uuid_only() {
        assert_eq!(VmId::parse(ID).unwrap().as_str(), ID);
        for bad in [
            "../../etc",
            "",
            "0B6F3A52-8D1E-4C55-9A7E-2F1C0E9D4B21",
            "{0b6f3a52-8d1e-4c55-9a7e-2f1c0e9d4b21}",
            "0b6f3a528d1e4c559a7e2f1c0e9d4b21",
            "0b6f3a52-8d1e-4c55-9a7e-2f1c0e9d4b2g",
            "0b6f3a52-8d1e-4c55-9a7e-2f1c0e9d4b21\n",
            "urn:uuid:0b6f3a52-8d1e-4c55-9a7e-2f1c0e9d4b21",
        ] {
            let e = VmId::parse(bad).unwrap_err();
            assert!(e.to_string().contains("lowercase hyphenated UUID"), "{e}");
        }
        assert!(VmId::parse(VmId::generate().as_str()).is_ok());
    }

    #[test]
    fn vm_id_deserialization_validates() {
        let e = serde_json::from_str::<VmId>("\"../../etc\"").unwrap_err();
        assert!(
            e.to_string().contains("\"../../etc\" is not a VM id"),
            "{e}"
        );
    }

    #[test]
    fn names() {
        for ok in ["web1", "a", "Web-1.example_x", &"a".repeat(63)] {
            check_vm_name(ok).unwrap();
        }
        for bad in [
            "",
            "-a",
            ".a",
            "a,b",
            "a\"b",
            "a\nb",
            "a b",
            "é",
            &"a".repeat(64),
        ] {
            assert!(check_vm_name(bad).is_err(), "{bad:?}");
        }
        check_device_id("disk-0").unwrap();
        for bad in ["", "0disk", "Disk", "disk_0", "disk,x", &"d".repeat(21)] {
            assert!(check_device_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mac_is_stable_and_local_unicast() {
        let id = VmId::parse(ID).unwrap();
        let a = MacAddr::derive(&id, 0);
        assert_eq!(a, MacAddr::derive(&id, 0));
        assert_ne!(a, MacAddr::derive(&id, 1));
        assert_eq!(&a.0[..3], &MacAddr::QEMU_PREFIX);
        // Pinned: changing the derivation would change every existing VM's MAC.
        assert_eq!(a.to_string(), "52:54:00:cc:93:ba");
        assert_eq!(MacAddr::parse(&a.to_string()).unwrap(), a);
        assert!(MacAddr::parse("01:00:5e:00:00:01").is_err());
        assert!(MacAddr::parse("52:54:00:00:00").is_err());
        assert!(MacAddr::parse("52:54:00:00:00:zz").is_err());
    }
}
