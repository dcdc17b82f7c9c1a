//! `lqctl vm migrate` between two real daemons on one host: a boot-sector VM whose overlay is
//! local to the source moves with `--storage` (the image imported on both nodes), and the
//! refusals an operator meets first: a bad `--to`, a disk the target cannot reach.

mod common;

use common::{TestDaemon, boot_disk};

#[test]
fn vm_migrate_with_storage_and_its_refusals() {
    let a = TestDaemon::start();
    let b = TestDaemon::start();
    let disk = a.dir.path().join("tiny.img");
    std::fs::write(&disk, boot_disk()).unwrap();
    for d in [&a, &b] {
        d.ok(&[
            "image",
            "import",
            disk.to_str().unwrap(),
            "--name",
            "tiny.img",
        ]);
    }
    a.ok_s("vm create mover --image tiny --disk-size 1G --memory 128M --firmware bios");
    a.ok_s("vm start mover");
    a.ok_s("vm wait mover --for running --timeout 60s");
    let to = format!("unix:{}", b.socket.display());

    let out = a.run_s("vm migrate mover --to tcp:127.0.0.1:9");
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("target_node_uri"), "{}", out.stderr);
    let out = a.lqctl(&["vm", "migrate", "mover", "--to", &to]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("migration failed") && out.stderr.contains("disks[0]"),
        "{}",
        out.stderr
    );
    assert_eq!(b.ok_s("vm list -o json").trim(), "[]");
    assert!(a.ok_s("vm list").contains("running"));

    let out = a.ok(&[
        "vm",
        "migrate",
        "mover",
        "--to",
        &to,
        "--storage",
        "--max-downtime",
        "500",
    ]);
    assert!(
        out.starts_with(&format!("mover: migrated to {to} (downtime ")),
        "{out}"
    );
    assert_eq!(a.ok_s("vm list -o json").trim(), "[]");
    let list: serde_json::Value = serde_json::from_str(&b.ok_s("vm list -o json")).unwrap();
    assert_eq!(
        (&list[0]["name"], &list[0]["state"]),
        (&"mover".into(), &"running".into())
    );
    let out = a.run_s("vm start mover");
    assert!(
        out.stderr.contains("mover"),
        "the source still knows the VM: {}",
        out.stderr
    );
}
