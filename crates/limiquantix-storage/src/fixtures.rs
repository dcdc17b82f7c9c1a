//! Disk images for tests of this crate and the crates above it (feature `fixtures`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A raw disk with a partition table written by `sfdisk`, and syslinux's MBR boot code when
/// `boot_code` is set.
pub fn partitioned(dir: &Path, name: &str, script: &str, boot_code: bool) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, vec![0u8; 8 << 20]).unwrap();
    let mut child = Command::new("sfdisk")
        .arg("-q")
        .arg(&p)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    if boot_code {
        let mbr =
            std::fs::read("/usr/lib/syslinux/mbr/mbr.bin").unwrap_or_else(|_| vec![0xfa; 440]);
        let mut b = std::fs::read(&p).unwrap();
        b[..mbr.len().min(440)].copy_from_slice(&mbr[..mbr.len().min(440)]);
        std::fs::write(&p, b).unwrap();
    }
    p
}
