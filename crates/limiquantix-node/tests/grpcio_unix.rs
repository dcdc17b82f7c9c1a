//! gRPC C-core clients (Python grpcio) on the daemon's Unix socket: with default options the call
//! fails (C-core sends the %-encoded socket path as `:authority`, which the `h2` crate under
//! tonic rejects with RST_STREAM PROTOCOL_ERROR; no server-side setting changes that), and with
//! `grpc.default_authority=localhost` it succeeds. Runs `tests/python/health_unix.py` with the
//! grpcio that `scripts/install-deps.sh` installs.

mod common;

use common::Node;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A Python that imports grpc: `LQ_TEST_PYTHON`, the virtualenv `scripts/install-deps.sh` makes
/// (`${XDG_CACHE_HOME:-~/.cache}/limiquantix/venv-grpcio`), or `python3` on `PATH`.
fn python_with_grpcio() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")));
    let candidates = std::env::var_os("LQ_TEST_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(cache.map(|c| c.join("limiquantix/venv-grpcio/bin/python3")))
        .chain([PathBuf::from("python3")]);
    for python in candidates {
        let imports = Command::new(&python)
            .args(["-c", "import grpc"])
            .output()
            .is_ok_and(|o| o.status.success());
        if imports {
            return python;
        }
    }
    panic!("no Python with grpcio: run scripts/install-deps.sh (or set LQ_TEST_PYTHON)");
}

#[test]
fn grpcio_needs_the_default_authority_option_on_the_unix_socket() {
    let python = python_with_grpcio();
    let mut node = Node::new();
    node.start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/health_unix.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(node.socket())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{stdout}\n{stderr}\n{}",
        node.log_text()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");

    // The documented failure: if it ever passes, the README's advice can be relaxed.
    let default = lines[0];
    assert!(
        default.contains("\"ok\": false"),
        "the default options now work: {default}"
    );
    assert!(
        default.contains("INTERNAL") && default.contains("RST_STREAM"),
        "{default}"
    );
    assert!(
        node.log_text().contains("malformed authority"),
        "h2 names the cause at debug level"
    );

    let fixed = lines[1];
    assert!(
        fixed.contains("\"ok\": true")
            && fixed.contains("\"healthy\": true")
            && fixed.contains(&format!("\"version\": \"{}\"", env!("CARGO_PKG_VERSION"))),
        "{fixed}"
    );
    node.terminate();
}
