//! lqctl against the real daemon and the real Debian test guest under TCG: import the cloud
//! image, `vm create --ssh-key --start --wait` until cloud-init is done (the daemon's boot
//! phase), the vCPUs and the agent's addresses in `vm list`, the boot phase, hostname and OS in
//! `vm show`, and the printed `ssh` command logs in with the key.

mod common;

use common::{TestDaemon, eventually};
use limiquantix_test_support::guest_image;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn create_wait_ready_list_show_and_ssh_into_the_guest() {
    let d = TestDaemon::start();
    let image = guest_image();
    d.ok(&[
        "image",
        "import",
        image.to_str().unwrap(),
        "--name",
        "debian-test.qcow2",
    ]);
    let key = d.dir.path().join("id_ed25519");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "lq-guest-test", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs");
    assert!(keygen.success());
    let public = key.with_extension("pub");

    // Created, started and waited for until cloud-init is done: one command.
    let out = d.ok(&[
        "vm",
        "create",
        "g1",
        "--image",
        "debian-test",
        "--cpus",
        "2",
        "--memory",
        "1G",
        "--ssh-key",
        public.to_str().unwrap(),
        "--start",
        "--wait",
        "--timeout",
        "10m",
    ]);
    assert!(out.starts_with("g1  running  ready in "), "{out}");
    let ssh_hint = out
        .split("  ")
        .find(|p| p.starts_with("ssh -p "))
        .unwrap_or_else(|| panic!("no ssh command in {out:?}"))
        .trim()
        .to_owned();

    // The agent's report reaches the list (from the daemon's cache, refreshed when the guest
    // became ready).
    let listed = eventually(Duration::from_secs(60), || {
        let list: serde_json::Value = serde_json::from_str(&d.ok_s("vm list -o json")).unwrap();
        list[0]["ips"]
            .as_array()
            .is_some_and(|ips| ips.iter().any(|ip| ip == "10.0.2.15"))
    });
    let list: serde_json::Value = serde_json::from_str(&d.ok_s("vm list -o json")).unwrap();
    assert!(listed, "vm list never showed the guest's address: {list}");
    assert_eq!(list[0]["cpus"], 2, "{list}");
    let table = d.ok_s("vm list");
    let row = table.lines().find(|l| l.starts_with("g1 ")).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        (cols[2], cols[3], cols[6]),
        ("running", "2", "10.0.2.15"),
        "{table}"
    );

    let show: serde_json::Value = serde_json::from_str(&d.ok_s("vm show g1 -o json")).unwrap();
    assert_eq!(show["boot"], "ready", "{show}");
    assert_eq!(show["hostname"], "g1", "{show}");
    assert_eq!(show["agent_connected"], true, "{show}");
    assert!(
        show["os"].as_str().unwrap_or_default().contains("Debian"),
        "{show}"
    );
    // A second wait for ready returns at once.
    let again = d.ok_s("vm wait g1 --for ready --timeout 30s");
    assert!(again.starts_with("g1  running  ready in "), "{again}");

    // The printed command reaches the guest with the key: `ssh -p PORT admin@127.0.0.1`.
    let mut words = ssh_hint.split_whitespace().skip(1);
    let (flag, port, target) = (words.next(), words.next(), words.next());
    assert_eq!(flag, Some("-p"), "{ssh_hint}");
    let ssh = Command::new("ssh")
        .args([
            "-i",
            key.to_str().unwrap(),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=60",
            "-p",
            port.unwrap(),
            target.unwrap(),
            "hostname && sudo -n true && echo sudo-ok",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("ssh runs");
    let stdout = String::from_utf8_lossy(&ssh.stdout);
    assert!(
        ssh.status.success(),
        "{ssh_hint} failed: {}",
        String::from_utf8_lossy(&ssh.stderr)
    );
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["g1", "sudo-ok"]);

    d.ok_s("vm delete g1 --force --yes");
    assert_eq!(d.ok_s("vm list -o json").trim(), "[]");
}
