//! The console of a CreateVM request: VNC only (SPICE is refused).

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
