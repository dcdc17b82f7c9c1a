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

/// Reads `yaml` with PyYAML `safe_load` and returns it as JSON (dates as strings); `Err` with
/// PyYAML's message when it refuses the document.
pub fn pyyaml_load(yaml: &[u8]) -> Result<serde_json::Value, String> {
    pyyaml_load_many(&[yaml]).remove(0)
}

/// Like [`pyyaml_load`] for many documents, in one Python process.
pub fn pyyaml_load_many(docs: &[&[u8]]) -> Vec<Result<serde_json::Value, String>> {
    use std::io::Write;
    let python = python_with("yaml");
    let script = "import sys, json, yaml\n\
                  out = []\n\
                  for doc in json.load(sys.stdin):\n\
                  \x20   try:\n\
                  \x20       out.append({'ok': yaml.safe_load(doc)})\n\
                  \x20   except Exception as e:\n\
                  \x20       out.append({'err': str(e)})\n\
                  print(json.dumps(out, default=str))\n";
    let input: Vec<String> = docs
        .iter()
        .map(|d| String::from_utf8(d.to_vec()).expect("test documents are UTF-8"))
        .collect();
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    results
        .into_iter()
        .map(|r| match r.get("ok") {
            Some(v) => Ok(v.clone()),
            None => Err(r["err"].as_str().unwrap_or_default().to_owned()),
        })
        .collect()
}
