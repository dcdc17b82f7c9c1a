//! `lqctl seed` end to end: real files in, a real image out, read back by real tools.

use std::path::Path;
use std::process::Command as Std;

use assert_cmd::Command;
use predicates::prelude::*;

fn lqctl() -> Command {
    let mut cmd = Command::cargo_bin("lqctl").unwrap();
    cmd.env("SOURCE_DATE_EPOCH", "1700000000");
    cmd
}

/// Runs a tool, panicking with a message naming it when it is not installed.
fn tool(name: &str, args: &[&str]) -> String {
    let out = Std::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("required tool `{name}` is not installed (run scripts/install-deps.sh): {e}")
    });
    assert!(out.status.success(), "{name} {args:?} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn extract(iso: &Path, name: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    tool(
        "xorriso",
        &[
            "-osirrox",
            "on",
            "-indev",
            iso.to_str().unwrap(),
            "-extract",
            "/",
            out.to_str().unwrap(),
        ],
    );
    std::fs::read(out.join(name)).unwrap()
}

#[test]
fn drop_in_for_cloud_localds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("ud"), "#cloud-config\nhostname: web1\n").unwrap();
    std::fs::write(
        d.join("nc"),
        "version: 2\nethernets:\n  eth0: {dhcp4: true}\n",
    )
    .unwrap();
    std::fs::write(d.join("vd"), "#!/bin/sh\necho vendor\n").unwrap();
    let iso = d.join("seed.iso");
    lqctl()
        .args(["seed", "-H", "web1", "-N", "nc", "-V", "vd"])
        .arg(&iso)
        .arg("ud")
        .current_dir(d)
        .assert()
        .success();
    let blkid = tool("blkid", &["-p", "-o", "export", iso.to_str().unwrap()]);
    assert!(
        blkid.contains("TYPE=iso9660") && blkid.contains("LABEL=cidata"),
        "{blkid}"
    );
    // SOURCE_DATE_EPOCH is the volume date (blkid shows it as the UUID) ...
    assert!(blkid.contains("UUID=2023-11-14-22-13-20-00"), "{blkid}");
    // ... so the same inputs give the same bytes.
    // (--fsync syncs the image and its directory; the bytes are the same.)
    let twin = d.join("twin.iso");
    lqctl()
        .args(["seed", "--fsync", "-H", "web1", "-N", "nc", "-V", "vd"])
        .arg(&twin)
        .arg("ud")
        .current_dir(d)
        .assert()
        .success();
    assert!(std::fs::read(&twin).unwrap() == std::fs::read(&iso).unwrap());
    assert_eq!(
        extract(&iso, "user-data"),
        b"#cloud-config\nhostname: web1\n"
    );
    assert_eq!(
        extract(&iso, "meta-data"),
        b"instance-id: iid-local01\nlocal-hostname: web1\n"
    );
    assert_eq!(
        extract(&iso, "network-config"),
        std::fs::read(d.join("nc")).unwrap()
    );
    assert_eq!(
        extract(&iso, "vendor-data"),
        std::fs::read(d.join("vd")).unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&iso).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // META_DATA, standard input and vfat.
    std::fs::write(d.join("md"), "instance-id: x\n").unwrap();
    let again = d.join("again.iso");
    lqctl()
        .args(["seed", "--filesystem", "vfat"])
        .arg(&again)
        .args(["-", "md"])
        .current_dir(d)
        .write_stdin("#!/bin/sh\n")
        .assert()
        .success();
    let blkid = tool("blkid", &["-p", "-o", "export", again.to_str().unwrap()]);
    assert!(
        blkid.contains("TYPE=vfat") && blkid.contains("LABEL=CIDATA"),
        "{blkid}"
    );
}

#[test]
fn default_user_data_from_flags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("key.pub"),
        "# my key\nssh-ed25519 AAAAC3Nza me@host\n",
    )
    .unwrap();
    std::fs::write(d.join("pw"), "s3cret\n").unwrap();
    let iso = d.join("seed.iso");
    lqctl()
        .args([
            "seed",
            "-H",
            "web1",
            "--user",
            "ops",
            "--ssh-key",
            "key.pub",
            "--password-file",
            "pw",
        ])
        .arg(&iso)
        .current_dir(d)
        .assert()
        .success();
    let user_data = String::from_utf8(extract(&iso, "user-data")).unwrap();
    assert!(user_data.starts_with("#cloud-config\n"), "{user_data}");
    assert!(user_data.contains("name: ops"), "{user_data}");
    assert!(
        user_data.contains("ssh-ed25519 AAAAC3Nza me@host"),
        "{user_data}"
    );
    assert!(user_data.contains("hashed_passwd: $6$"), "{user_data}");
    assert!(!user_data.contains("s3cret"), "{user_data}");
}

#[test]
fn bad_input_fails_with_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bad"),
        "#cloud-config\nusers:\n  - name: a\n    lock_passwd: maybe\n",
    )
    .unwrap();
    std::fs::write(d.join("yaml"), "#cloud-config\na: [\n").unwrap();
    std::fs::write(d.join("nc"), "version: 3\n").unwrap();
    std::fs::write(d.join("ok"), "#cloud-config\n").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["bad"], "user-data line 4 at users.0.lock_passwd"),
        (&["yaml"], "user-data line 3"),
        (&["-N", "nc", "ok"], "network-config"),
        (&["-H", "bad_name", "ok"], "hostname"),
        (&["missing"], "reading missing"),
        (&["--ssh-key", "ok"], "--hostname is required"),
        (&["--user", "x", "ok"], "cannot be combined"),
    ];
    for (args, message) in cases {
        // A fresh OUTPUT is not created...
        let out = d.join("new.iso");
        lqctl()
            .arg("seed")
            .arg(&out)
            .args(*args)
            .current_dir(d)
            .assert()
            .failure()
            .stderr(predicate::str::contains(*message))
            .stderr(predicate::function(|s: &str| {
                s.trim_end().lines().count() == 1
            }));
        assert!(!out.exists(), "{args:?} left {out:?}");
    }
    // ...and an existing one is left as it was.
    let existing = d.join("existing.iso");
    std::fs::write(&existing, b"old").unwrap();
    lqctl()
        .arg("seed")
        .arg(&existing)
        .arg("bad")
        .current_dir(d)
        .assert()
        .failure();
    assert_eq!(std::fs::read(&existing).unwrap(), b"old");
    assert_eq!(
        std::fs::read_dir(d).unwrap().count(),
        5,
        "no temporary files left"
    );
}
