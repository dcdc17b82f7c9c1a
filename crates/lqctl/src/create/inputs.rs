//! Files the `vm create` flags name: SSH public keys and the password file (the cloud-init
//! documents are read with [`read_text`] too).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};

/// Reads a small text file a flag names.
pub(super) fn read_text(flag: &str, path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| anyhow!("cannot read {flag} {}: {e}", path.display()))
}

/// Collects public keys from `--ssh-key` values: a key given literally, or a file of keys.
pub(super) fn ssh_keys(values: &[String]) -> anyhow::Result<Vec<String>> {
    let mut keys = Vec::new();
    for v in values {
        let literal = ["ssh-", "ecdsa-", "sk-"].iter().any(|p| v.starts_with(p));
        let text = if literal {
            v.clone()
        } else {
            let path = expand_home(v);
            let text = read_text("--ssh-key", &path)?;
            if text.contains("PRIVATE KEY") {
                bail!("--ssh-key {v} is a private key: give the public key ({v}.pub)");
            }
            text
        };
        let found: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        if found.is_empty() {
            bail!("--ssh-key {v} holds no public key");
        }
        keys.extend(found);
    }
    Ok(keys)
}

/// `~/PATH` as a path under `$HOME`; any other text as a path as it is.
pub(crate) fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// Reads `--password-file`: the file's text without its trailing line ends; empty is refused.
pub(super) fn read_password(path: &Path) -> anyhow::Result<String> {
    let pw = read_text("--password-file", path)?;
    let pw = pw.trim_end_matches(['\n', '\r']);
    if pw.is_empty() {
        bail!("--password-file {} is empty", path.display());
    }
    Ok(pw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_keys_from_files_and_literals() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("id.pub");
        std::fs::write(&f, "# comment\nssh-ed25519 AAAA a@b\n\nssh-rsa BBBB c@d\n").unwrap();
        let keys = ssh_keys(&[f.display().to_string(), "ssh-ed25519 CCCC e@f".into()]).unwrap();
        assert_eq!(
            keys,
            [
                "ssh-ed25519 AAAA a@b",
                "ssh-rsa BBBB c@d",
                "ssh-ed25519 CCCC e@f"
            ]
        );
        let private = dir.path().join("id");
        std::fs::write(&private, "-----BEGIN OPENSSH PRIVATE KEY-----\n").unwrap();
        let err = ssh_keys(&[private.display().to_string()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("private key"), "{err}");
        assert!(ssh_keys(&[dir.path().join("none").display().to_string()]).is_err());
    }
}
