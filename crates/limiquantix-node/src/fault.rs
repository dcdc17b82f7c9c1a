//! Crash-test injection points.
//!
//! `LQ_FAULT_INJECT=<point>[,<point>...]` makes the daemon abort (as if killed: no cleanup, no
//! unwinding) when it reaches one of the named points. The points are always compiled in and
//! inert unless the variable names them; the variable is read once at start-up. Points of
//! CreateVM: `createvm:after-validate`, `createvm:after-seed`, `createvm:after-define`.
//! Tests use them to prove that a daemon killed part way through leaves nothing that blocks a
//! retry.

use std::sync::OnceLock;

static POINTS: OnceLock<Vec<String>> = OnceLock::new();

/// Reads `LQ_FAULT_INJECT` (call once at start-up; later calls change nothing).
pub fn init_from_env() {
    let points = std::env::var("LQ_FAULT_INJECT")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let _ = POINTS.set(points);
}

/// Aborts the process when `point` was named in `LQ_FAULT_INJECT`.
pub fn point(point: &str) {
    if POINTS.get().is_some_and(|p| p.iter().any(|x| x == point)) {
        eprintln!("limiquantix-node: fault injection: aborting at {point}");
        std::process::abort();
    }
}
