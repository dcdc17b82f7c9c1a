//! lqctl against a real `limiquantix-node` process on a temp state dir, with real QEMU under TCG:
//! image import (local with good and bad checksums, HTTP with a transfer cut short that resumes),
//! and the VM path create → wait running → list → console log → stop → delete.

mod common;

use std::time::Duration;

use common::{
    BOOT_MARKER, RangeServer, TestDaemon, boot_disk, eventually, free_port, make_certs, sha256_of,
};
use limiquantix_test_support::tiny_guest_disk;

#[test]
fn image_import_checksums_and_resumed_download() {
    let d = TestDaemon::start();
    let disk = d.dir.path().join("tiny.img");
    std::fs::write(&disk, boot_disk()).unwrap();
    let disk_arg = disk.to_str().unwrap();
    let good = sha256_of(&disk);

    // A bad checksum: refused, and nothing in the library.
    let out = d.lqctl(&["image", "import", disk_arg, "--sha256", &"0".repeat(64)]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("lqctl: sha256 mismatch"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert_eq!(d.ok(&["image", "list", "-o", "json"]).trim(), "[]");
    let images_dir = d.dir.path().join("state/images");
    let leftovers: Vec<_> = walk(&images_dir);
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");

    // The good checksum: imported.
    let out = d.ok(&["image", "import", disk_arg, "--sha256", &good]);
    assert!(out.starts_with("tiny.img  raw  1.0 MiB  sha256:"), "{out}");
    let listed: serde_json::Value =
        serde_json::from_str(&d.ok(&["image", "list", "-o", "json"])).unwrap();
    assert_eq!(listed[0]["name"], "tiny.img");
    assert_eq!(listed[0]["format"], "raw");

    // Over HTTP, the first transfer cut at 300 000 bytes; the daemon resumes with a Range request.
    let body = boot_disk();
    let server = RangeServer::start("web.img", body.clone(), vec![Some(300_000)]);
    let out = d.ok(&[
        "image",
        "import",
        &server.url,
        "--sha256",
        &good,
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["name"], "web.img");
    assert_eq!(v["sha256"], good);
    assert_eq!(
        server.ranges.lock().unwrap().clone(),
        vec![None, Some("bytes=300000-".to_owned())]
    );
    let stored = std::fs::read(images_dir.join("web.img")).unwrap();
    assert!(stored == body, "downloaded bytes differ");

    // Delete by name without extension.
    assert_eq!(d.ok(&["image", "delete", "web"]), "web.img  deleted\n");
}

#[test]
fn vm_create_wait_list_console_stop_delete() {
    let d = TestDaemon::start();
    let disk = d.dir.path().join("tiny.img");
    std::fs::write(&disk, boot_disk()).unwrap();
    d.ok(&[
        "image",
        "import",
        disk.to_str().unwrap(),
        "--name",
        "tiny.img",
    ]);

    let out = d.ok_s("vm create tiny1 --image tiny --disk-size 1G --memory 128M --firmware bios");
    assert!(out.starts_with("tiny1  created  "), "{out}");
    let out = d.lqctl(&["vm", "create", "tiny2", "--image", disk.to_str().unwrap()]);
    assert!(
        out.stderr
            .contains("import it into the library first: lqctl image import"),
        "{}",
        out.stderr
    );
    let out = d.run_s("vm create tiny1 --image tiny");
    assert!(
        out.stderr.contains("a VM named tiny1 already exists"),
        "{}",
        out.stderr
    );
    let events = d.spawn(&["events", "--vm", "tiny1", "-o", "json"]);
    assert_eq!(d.ok_s("vm start tiny1"), "tiny1  started\n");
    d.ok_s("vm wait tiny1 --for running --timeout 60s");

    let list: serde_json::Value = serde_json::from_str(&d.ok_s("vm list -o json")).unwrap();
    assert_eq!(list[0]["name"], "tiny1");
    assert_eq!(list[0]["state"], "running");
    assert_eq!(list[0]["memory_mib"], 128);
    assert!(
        list[0]["cpus"].as_u64() >= Some(1),
        "the daemon reports vCPUs: {list}"
    );
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let table = d.ok_s("vm list");
    assert!(table.starts_with("NAME "), "{table}");
    assert!(
        table.contains(&format!("tiny1  {}  running", &id[..8])),
        "{table}"
    );

    // The guest's serial output, naming the VM by an id prefix.
    let seen = eventually(Duration::from_secs(90), || {
        d.ok(&["vm", "console", &id[..6], "--log"])
            .contains(BOOT_MARKER)
    });
    assert!(
        seen,
        "no boot marker in the console log:\n{}",
        d.ok_s("vm logs tiny1 --qemu")
    );

    // `vm top --once` and `node metrics`: the collector's sample of the running VM.
    let sampled = eventually(Duration::from_secs(20), || {
        let top: serde_json::Value =
            serde_json::from_str(&d.ok_s("vm top --once --sort memory -o json")).unwrap();
        top[0]["name"] == "tiny1" && top[0]["memory_used_bytes"].as_u64() > Some(0)
    });
    assert!(sampled, "{}", d.ok_s("vm top --once"));
    let top = d.ok_s("vm top --once");
    assert!(top.starts_with("NAME ") && top.contains("tiny1"), "{top}");
    let node: serde_json::Value = serde_json::from_str(&d.ok_s("node metrics -o json")).unwrap();
    assert!(node["memory_total_bytes"].as_u64() > Some(0), "{node}");
    assert_eq!(node["vms"][0]["vm_id"], id.as_str(), "{node}");

    // `vm show` of a running VM carries the boot phase the daemon reports (SeaBIOS's banner
    // reaches the serial log on a BIOS machine; the boot sector prints nothing more the daemon's
    // readiness tracker knows, so it stays at the firmware phase).
    let show: serde_json::Value = serde_json::from_str(&d.ok_s("vm show tiny1 -o json")).unwrap();
    assert_eq!(show["boot"], "firmware", "{show}");

    // Attaching with a replay of the log's end shows what the guest printed before.
    let out = d.ok(&[
        "vm",
        "console",
        "tiny1",
        "--replay",
        "65536",
        "--until",
        BOOT_MARKER,
    ]);
    assert!(out.contains(BOOT_MARKER), "{out}");

    // Pause, resume, reboot.
    assert_eq!(d.ok_s("vm pause tiny1"), "tiny1  paused\n");
    let show: serde_json::Value = serde_json::from_str(&d.ok_s("vm show tiny1 -o json")).unwrap();
    assert_eq!(show["state"], "paused");
    assert_eq!(d.ok_s("vm resume tiny1"), "tiny1  resumed\n");
    assert_eq!(d.ok_s("vm reboot tiny1"), "tiny1  rebooted\n");
    d.ok_s("vm wait tiny1 --timeout 30s");

    // The image is in use: deleting it is refused.
    let out = d.run_s("image delete tiny");
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("in use"), "{}", out.stderr);

    // Deleting a running VM without --force is refused with what to do.
    let out = d.run_s("vm delete tiny1 --yes");
    assert!(out.stderr.contains("stop it first"), "{}", out.stderr);

    assert_eq!(d.ok_s("vm stop tiny1 --force"), "tiny1  stopped\n");
    // The event stream saw the VM start and stop, as JSON lines naming it.
    let seen = events.lines_until(Duration::from_secs(20), |l| l.contains("\"vm_stopped\""));
    let kinds: Vec<String> = seen
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .inspect(|e| assert_eq!(e["vm_name"], "tiny1"))
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.contains(&"vm_started".to_owned()), "{kinds:?}");

    let show: serde_json::Value = serde_json::from_str(&d.ok_s("vm show tiny1 -o json")).unwrap();
    assert_eq!(show["state"], "stopped");
    assert_eq!(d.ok_s("vm delete tiny1 --yes"), "tiny1  deleted\n");
    assert_eq!(d.ok_s("vm list -o json").trim(), "[]");
    let out = d.run_s("vm show tiny1");
    assert!(
        out.stderr.contains("no VM is named \"tiny1\""),
        "{}",
        out.stderr
    );

    // With no VM left, the image can go.
    d.ok_s("image delete tiny");
}

/// `https://HOST:PORT` with `--tls-ca` and a client certificate reaches a daemon that requires
/// mTLS; without the client certificate the failure is one line.
#[test]
fn tls_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let [ca, server_pem, server_key, client_pem, client_key] = make_certs(dir.path());
    let port = free_port();
    let p = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let d = TestDaemon::start_with(
        dir,
        &[
            "--listen".into(),
            format!("tcp:127.0.0.1:{port}"),
            "--tls-cert".into(),
            p(&server_pem),
            "--tls-key".into(),
            p(&server_key),
            "--tls-client-ca".into(),
            p(&ca),
        ],
    );
    let address = format!("https://127.0.0.1:{port}");
    let tls = |with_client: bool| {
        let mut args = vec![
            "--socket".to_owned(),
            address.clone(),
            "--tls-ca".into(),
            p(&ca),
            "image".into(),
            "list".into(),
            "-o".into(),
            "json".into(),
        ];
        if with_client {
            args.extend([
                "--tls-cert".into(),
                p(&client_pem),
                "--tls-key".into(),
                p(&client_key),
            ]);
        }
        std::process::Command::new(env!("CARGO_BIN_EXE_lqctl"))
            .args(&args)
            .output()
            .unwrap()
    };
    let reached = eventually(Duration::from_secs(20), || tls(true).status.success());
    assert!(
        reached,
        "mTLS call never succeeded: {:?}\n{}",
        tls(true),
        d.log()
    );
    assert_eq!(String::from_utf8_lossy(&tls(true).stdout).trim(), "[]");
    let out = tls(false);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls-cert/--tls-key"), "{err}");
    assert!(
        err.starts_with("lqctl: ") && err.lines().count() == 1,
        "{err}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `lqctl vm console` with stdin piped, then on a terminal: typed lines reach the tiny guest and
/// its answers come back; Ctrl-] detaches and restores the terminal; a second session is refused
/// while one is open; a stopped VM is refused with the reason.
#[test]
fn interactive_console_with_piped_stdin() {
    let d = TestDaemon::start();
    let disk = tiny_guest_disk();
    d.ok(&[
        "image",
        "import",
        disk.to_str().unwrap(),
        "--name",
        "tiny-guest.qcow2",
    ]);
    d.ok_s(
        "vm create echo1 --image tiny-guest --disk-size 1G --memory 256M --firmware bios --start",
    );
    let ready = eventually(Duration::from_secs(90), || {
        d.ok_s("vm console echo1 --log")
            .contains("LQ-TINY-GUEST READY")
    });
    assert!(
        ready,
        "the guest booted:\n{}",
        d.ok_s("vm console echo1 --log")
    );

    let console = |args: &[&str], stdin: &str| {
        let out = assert_cmd::Command::cargo_bin("lqctl")
            .unwrap()
            .arg("--socket")
            .arg(&d.socket)
            .args(["vm", "console", "echo1"])
            .args(args)
            .env("NO_COLOR", "1")
            .write_stdin(stdin)
            .timeout(Duration::from_secs(90))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = console(
        &[
            "--until",
            "LQ-TINY-GUEST ECHO hello-console",
            "--linger",
            "60s",
        ],
        "hello-console\n",
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("LQ-TINY-GUEST ECHO hello-console"),
        "{stdout}"
    );
    assert!(
        d.ok_s("vm console echo1 --log")
            .contains("LQ-TINY-GUEST ECHO hello-console"),
        "the serial log keeps the exchange"
    );

    // On a terminal (a pty made by script(1)): the banner, typed keys reach the guest, Ctrl-]
    // detaches, and the terminal's settings are the same afterwards.
    let inner = format!(
        "stty -g; {} --socket {} vm console echo1; echo exit=$?; stty -g",
        env!("CARGO_BIN_EXE_lqctl"),
        d.socket.display()
    );
    let mut tty = std::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("script(1) from util-linux");
    let mut keys = tty.stdin.take().unwrap();
    let mut screen_out = tty.stdout.take().unwrap();
    let screen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = std::io::Read::read(&mut screen_out, &mut buf) {
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let text = || String::from_utf8_lossy(&screen.lock().unwrap()).replace('\r', "");
    let shows = |needle: &str| eventually(Duration::from_secs(30), || text().contains(needle));
    assert!(
        shows("Connected to the serial console of echo1 (escape: Ctrl-] to detach)"),
        "{}",
        text()
    );
    std::io::Write::write_all(&mut keys, b"hello-tty\r").unwrap();
    assert!(shows("LQ-TINY-GUEST ECHO hello-tty"), "{}", text());
    std::io::Write::write_all(&mut keys, &[0x1d]).unwrap();
    assert!(shows("exit=0"), "{}", text());
    let _ = tty.wait();
    let screen = text();
    assert!(
        screen.contains("Detached from the serial console of echo1."),
        "{screen}"
    );
    let settings: Vec<&str> = screen
        .lines()
        .filter(|l| l.split(':').count() > 30)
        .collect();
    assert_eq!(settings.len(), 2, "{screen}");
    assert_eq!(settings[0], settings[1], "the terminal is restored");

    // While a session is open (stdin held open), another one is refused. The first session's
    // replayed byte says it is attached.
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_lqctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["vm", "console", "echo1", "--replay", "1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut byte = [0u8; 1];
    let n = std::io::Read::read(first.stdout.as_mut().unwrap(), &mut byte).unwrap();
    assert_eq!(n, 1, "the first session is attached");
    let (code, _, stderr) = console(&["--linger", "0s"], "");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("is already attached by another client"),
        "{stderr}"
    );
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(d.ok_s("vm stop echo1 --force"), "echo1  stopped\n");
    let (code, _, stderr) = console(&[], "");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with("lqctl: ") && stderr.contains("is stopped"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
