//! Helpers for tests that compare our output with real tools.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `tool` with `args`; panics with a message naming the tool when it is not installed,
/// and with its stderr when it fails.
pub fn run(tool: &str, args: &[&str]) -> Output {
    let output = match Command::new(tool).args(args).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("required tool `{tool}` is not installed (run scripts/install-deps.sh): {e}")
        }
        Err(e) => panic!("running `{tool}` failed: {e}"),
    };
    assert!(
        output.status.success(),
        "`{tool} {}` failed ({}):\n{}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Like [`run`] and returns stdout and stderr as one string.
pub fn run_text(tool: &str, args: &[&str]) -> String {
    let output = run(tool, args);
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A Python 3 interpreter that can `import yaml` (PyYAML), preferring `LQ_PYTHON`, then the
/// system interpreter; panics naming the missing package otherwise.
pub fn python_with(module: &str) -> String {
    let mut candidates = Vec::new();
    if let Ok(p) = std::env::var("LQ_PYTHON") {
        candidates.push(p);
    }
    candidates.extend(["/usr/bin/python3".to_owned(), "python3".to_owned()]);
    for candidate in candidates {
        let ok = Command::new(&candidate)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return candidate;
        }
    }
    panic!(
        "required tool `python3` with the `{module}` module is not installed \
         (apt-get install python3-yaml cloud-init)"
    )
}

/// Writes `data` to `dir/name` and returns the path as a string.
pub fn put(dir: &Path, name: &str, data: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path.to_str().unwrap().to_owned()
}
