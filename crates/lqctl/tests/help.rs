//! Snapshot tests of `--help` output: the documented interface of the command line.

use assert_cmd::Command;

#[path = "common/snapshot.rs"]
mod snapshot;

use snapshot::assert_snapshot;

fn help(args: &[&str]) -> String {
    let out = Command::cargo_bin("lqctl")
        .unwrap()
        .args(args)
        .arg("--help")
        .env_remove("LQ_SOCKET")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_snapshots() {
    for (args, file) in [
        (&["vm"][..], "help_vm.txt"),
        (&["vm", "create"][..], "help_vm_create.txt"),
        (&["vm", "list"][..], "help_vm_list.txt"),
        (&["vm", "console"][..], "help_vm_console.txt"),
        (&["vm", "wait"][..], "help_vm_wait.txt"),
        (&["vm", "snapshot"][..], "help_vm_snapshot.txt"),
        (&["vm", "exec"][..], "help_vm_exec.txt"),
        (&["vm", "disk", "attach"][..], "help_vm_disk_attach.txt"),
        (&["vm", "nic", "attach"][..], "help_vm_nic_attach.txt"),
        (&["image"][..], "help_image.txt"),
        (&["image", "import"][..], "help_image_import.txt"),
        (&["pool"][..], "help_pool.txt"),
        (&["pool", "create"][..], "help_pool_create.txt"),
        (&["volume"][..], "help_volume.txt"),
        (&["volume", "create"][..], "help_volume_create.txt"),
        (&["volume", "resize"][..], "help_volume_resize.txt"),
    ] {
        assert_snapshot(file, &help(args));
    }
}

#[test]
fn top_level_help_lists_the_command_groups() {
    let h = help(&[]);
    for group in [
        "vm",
        "image",
        "pool",
        "volume",
        "events",
        "node",
        "seed",
        "version",
        "completion",
    ] {
        assert!(
            h.contains(&format!("\n  {group} ")),
            "{group} missing:\n{h}"
        );
    }
    assert!(h.contains("[env: LQ_SOCKET]") && h.contains("/run/limiquantix/limiquantix-node.sock"));
}

#[test]
fn completion_scripts_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::cargo_bin("lqctl")
            .unwrap()
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains("lqctl") && script.contains("create"),
            "{shell}"
        );
    }
}

#[test]
fn an_absent_daemon_is_one_line_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");
    let out = Command::cargo_bin("lqctl")
        .unwrap()
        .args(["vm", "list", "--socket"])
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        format!(
            "lqctl: cannot reach the daemon at {}: is limiquantix-node running?\n",
            socket.display()
        )
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_sizes_are_refused_before_any_connection() {
    let out = Command::cargo_bin("lqctl")
        .unwrap()
        .args(["vm", "create", "x", "--image", "i", "--memory", "2048"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("has no unit: write e.g. 512M, 2G or 20GiB"),
        "{err}"
    );
}

#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::Read as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lqctl"))
        .args(["completion", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read nothing and close the pipe: the completion script is far larger than a pipe buffer.
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    child.wait().unwrap();
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
}
