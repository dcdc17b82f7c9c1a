//! Crash-test points inside the backend's multi-step operations (hot-plug).
//!
//! `LQ_FAULT_INJECT=<point>[,<point>...]` (the daemon's variable, read once) makes the process
//! abort, as if killed, when it reaches a named point. Points: `attachdisk:after-file`,
//! `attachdisk:after-blockdev`, `attachdisk:after-device`, `detachdisk:after-device-del`,
//! `detachdisk:after-blockdev-del`, `attachnic:after-netdev`, `attachnic:after-device`,
//! `detachnic:after-device-del`. Inert without the variable.

use std::sync::OnceLock;

static POINTS: OnceLock<Vec<String>> = OnceLock::new();

/// Aborts the process when `point` is named in `LQ_FAULT_INJECT`.
pub fn point(point: &str) {
    let points = POINTS.get_or_init(|| {
        std::env::var("LQ_FAULT_INJECT")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default()
    });
    if points.iter().any(|p| p == point) {
        eprintln!("limiquantix-qemu: fault injection: aborting at {point}");
        std::process::abort();
    }
}
