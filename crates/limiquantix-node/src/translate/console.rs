//! The console of a CreateVM request: VNC only (SPICE is refused). A request without a console
//! (what the LimiQuantix control plane sends) gets VNC anyway, with a password of its own.

use crate::error::ApiError;
use limiquantix_proto::v1 as pb;
use limiquantix_vm::model as m;

/// Checks the request's console and builds its model. `vnc_port` is 0 (any free display) or
/// 5900 to 5999 (display 0 to 99).
pub(super) fn console(c: &pb::ConsoleSpec) -> Result<m::ConsoleSpec, ApiError> {
    if c.spice_enabled || c.spice_port != 0 {
        return Err(ApiError::invalid(
            "spec.console.spice_enabled",
            "SPICE is not supported on this node; use VNC",
        ));
    }
    let vnc_display = match c.vnc_port {
        0 => None,
        p @ 5900..=5999 => Some((p - 5900) as u16),
        p => {
            return Err(ApiError::invalid(
                "spec.console.vnc_port",
                format!("{p} is not allowed (0 for any free display, or 5900 to 5999)"),
            ));
        }
    };
    Ok(m::ConsoleSpec {
        vnc: c.vnc_enabled,
        vnc_display,
        vnc_password: (!c.vnc_password.is_empty()).then(|| c.vnc_password.clone()),
        ..m::ConsoleSpec::default()
    })
}

/// The console of a request that names none: VNC on `address` (the node's management address,
/// loopback without one), with a random password (8 characters, VNC's limit) that GetConsole
/// returns to whoever may ask for it; never a display without one.
pub(super) fn default_console(address: Option<std::net::Ipv4Addr>) -> m::ConsoleSpec {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let random = uuid::Uuid::new_v4().into_bytes();
    let password = random[..8]
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    m::ConsoleSpec {
        vnc: true,
        vnc_password: Some(password),
        vnc_listen: address.unwrap_or(std::net::Ipv4Addr::LOCALHOST),
        ..m::ConsoleSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_console_gets_vnc_with_its_own_password() {
        let (a, b) = (
            default_console(None),
            default_console(Some([10, 0, 0, 5].into())),
        );
        assert_eq!(a.vnc_listen, std::net::Ipv4Addr::LOCALHOST);
        assert_eq!(b.vnc_listen, std::net::Ipv4Addr::new(10, 0, 0, 5));
        assert!(a.vnc);
        let pw = a.vnc_password.unwrap();
        assert_eq!(pw.len(), 8);
        assert!(pw.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(Some(pw), b.vnc_password, "every VM has its own");
    }
}
