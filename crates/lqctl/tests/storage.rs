//! lqctl's storage commands against a real `limiquantix-node` process on a temp state dir: one
//! daemon for the whole file, the checks run in order on the same pool (a local directory pool
//! with a cap): pool create → list/show → volume create → list → resize +1G → snapshot → clone →
//! create from the snapshot and from an image → the pool's figures → the cap's refusals →
//! attach-info → delete → pool files → argument mistakes refused before any call → pool delete.

mod common;

use common::{Output, TestDaemon, boot_disk};
use serde_json::Value;

const GIB: u64 = 1 << 30;
const POOL: &str = "local1";

fn json(d: &TestDaemon, args: &str) -> Value {
    let out = d.ok_s(&format!("{args} -o json"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args}: {e}: {out}"))
}

/// The volume `id` of the pool as `volume list -o json` shows it.
fn volume(d: &TestDaemon, id: &str) -> Value {
    let list = json(d, &format!("volume list {POOL}"));
    list.as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("volume {id} not listed: {list}"))
}

/// The cells of a table row (columns are two or more spaces apart).
fn cells(row: &str) -> Vec<&str> {
    row.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// A refusal: exit 1 and one `lqctl: ...` line on stderr containing `needle`.
fn refused(out: &Output, needle: &str) {
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.starts_with("lqctl: "), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(needle),
        "{needle:?} not in {}",
        out.stderr
    );
}

#[test]
fn pools_and_volumes_through_lqctl() {
    let d = TestDaemon::start();
    pool_with_a_cap_is_created_and_listed(&d);
    volumes_are_created_grown_snapshotted_and_copied(&d);
    volumes_come_from_images_and_say_how_to_attach(&d);
    the_pool_counts_its_volumes_and_its_cap_refuses_more(&d);
    volumes_are_deleted_and_pool_files_listed(&d);
    argument_mistakes_are_refused_before_any_call(&d);
    pool_delete_answers_and_forgets_the_pool(&d);
}

fn pool_with_a_cap_is_created_and_listed(d: &TestDaemon) {
    let out = d.ok_s(&format!("pool create {POOL} --capacity 8G"));
    assert!(out.starts_with(&format!("id:          {POOL}\n")), "{out}");
    assert!(out.contains("cap:         8.0 GiB\n"), "{out}");
    assert!(out.contains("state:       ok\n"), "{out}");

    let pools = json(d, "pool list");
    let pool = pools
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == POOL)
        .unwrap_or_else(|| panic!("{POOL} not listed: {pools}"));
    assert_eq!(pool["type"], "local-dir");
    assert_eq!(pool["available"], true);
    assert_eq!(pool["capacity_limit_bytes"], 8 * GIB);
    assert_eq!(
        pool["total_bytes"],
        8 * GIB,
        "a capped pool's size is its cap"
    );
    let dir = d.dir.path().join("state/pools").join(POOL);
    assert_eq!(pool["path"], dir.to_str().unwrap());
    assert!(dir.is_dir());

    let table = d.ok_s("pool list");
    assert!(table.starts_with("ID "), "{table}");
    let header = table.lines().next().unwrap();
    for col in [
        "TYPE",
        "STATE",
        "SIZE",
        "FREE",
        "ALLOCATED",
        "PROVISIONED",
        "OVERCOMMIT",
        "VOLUMES",
        "VMS",
        "PATH",
    ] {
        assert!(header.contains(col), "{col} missing: {header}");
    }
    let row = cells(table.lines().find(|l| l.starts_with(POOL)).unwrap());
    assert_eq!(
        &row[..5],
        [POOL, "local-dir", "ok", "8.0 GiB", "8.0 GiB"],
        "{row:?}"
    );

    let show = json(d, &format!("pool show {POOL}"));
    assert_eq!(show["id"], POOL);
    assert_eq!(show["vm_ids"], Value::Array(vec![]));
    assert_eq!(show["volume_count"], 0);
    // Creating it again with the same settings changes nothing.
    d.ok_s(&format!("pool create {POOL} --capacity 8G"));
}

fn volumes_are_created_grown_snapshotted_and_copied(d: &TestDaemon) {
    let out = d.ok_s(&format!("volume create {POOL} v1 --size 1G"));
    assert!(out.starts_with("id:        v1\n"), "{out}");
    assert!(out.contains("size:      1.0 GiB\n"), "{out}");
    let v1 = volume(d, "v1");
    assert_eq!(v1["size_bytes"], GIB);
    assert_eq!(v1["pool"], POOL);
    assert_eq!(v1["backing_file"], Value::Null);
    assert!(
        v1["allocated_bytes"].as_u64().unwrap() < GIB,
        "an empty volume is thin: {v1}"
    );
    let table = d.ok_s(&format!("volume list {POOL}"));
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.contains("ATTACHED TO"), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("v1  1.0 GiB")),
        "{table}"
    );

    assert_eq!(
        d.ok_s(&format!("volume resize {POOL} v1 +1G")),
        "v1  resized to 2.0 GiB\n"
    );
    assert_eq!(volume(d, "v1")["size_bytes"], 2 * GIB);
    // Never smaller: the daemon's refusal, as it says it.
    let out = d.run_s(&format!("volume resize {POOL} v1 1G"));
    refused(&out, "volumes only grow");
    assert_eq!(volume(d, "v1")["size_bytes"], 2 * GIB);

    assert_eq!(
        d.ok_s(&format!("volume snapshot {POOL} v1 s1")),
        "v1@s1  created\n"
    );
    assert_eq!(volume(d, "v1")["snapshots"], serde_json::json!(["s1"]));

    assert_eq!(
        d.ok_s(&format!("volume clone {POOL} v1 v2")),
        "v2  cloned from v1\n"
    );
    let v2 = volume(d, "v2");
    assert_eq!(v2["size_bytes"], 2 * GIB);
    assert_eq!(
        v2["backing_file"],
        Value::Null,
        "a clone stands alone: {v2}"
    );

    let v3 = json(d, &format!("volume create {POOL} v3 --from-snapshot v1@s1"));
    assert_eq!(v3["id"], "v3");
    assert_eq!(v3["size_bytes"], 2 * GIB);
    assert_eq!(v3["backing_file"], Value::Null);
}

fn volumes_come_from_images_and_say_how_to_attach(d: &TestDaemon) {
    let disk = d.dir.path().join("tiny.img");
    std::fs::write(&disk, boot_disk()).unwrap();
    d.ok(&["image", "import", disk.to_str().unwrap()]);
    let ov = json(d, &format!("volume create {POOL} ov --from-image tiny.img"));
    let backing = ov["backing_file"].as_str().unwrap_or_default();
    assert!(
        backing.ends_with("tiny.img"),
        "an overlay on the image: {ov}"
    );
    assert_eq!(ov["size_bytes"], 1 << 20, "the image's size: {ov}");

    let info = json(d, &format!("volume attach-info {POOL} v1"));
    let path = volume(d, "v1")["path"].as_str().unwrap().to_owned();
    assert_eq!(info["path"], path.as_str());
    assert_eq!(info["blockdev"]["driver"], "qcow2", "{info}");
    assert_eq!(
        info["blockdev"]["file"]["filename"],
        path.as_str(),
        "{info}"
    );
    let text = d.ok_s(&format!("volume attach-info {POOL} v1"));
    assert!(text.contains(&format!("path:     {path}\n")), "{text}");
    assert!(text.contains("blockdev: {"), "{text}");
}

fn the_pool_counts_its_volumes_and_its_cap_refuses_more(d: &TestDaemon) {
    // v1, v2 and v3 of 2 GiB and the 1 MiB overlay: 6 GiB + 1 MiB promised of the 8 GiB cap.
    let provisioned = 6 * GIB + (1 << 20);
    let pool = json(d, &format!("pool show {POOL}"));
    assert_eq!(pool["volume_count"], 4, "{pool}");
    assert_eq!(pool["provisioned_bytes"], provisioned, "{pool}");
    let allocated = pool["allocated_bytes"].as_u64().unwrap();
    assert!(allocated > 0 && allocated < GIB, "thin volumes: {pool}");
    let free = pool["available_bytes"].as_u64().unwrap();
    assert!(
        free <= 8 * GIB - provisioned,
        "what is left of the cap: {pool}"
    );
    let ratio = pool["overcommit_ratio"].as_f64().unwrap();
    assert!(
        (ratio - provisioned as f64 / (8 * GIB) as f64).abs() < 1e-9,
        "{pool}"
    );
    let table = d.ok_s("pool list");
    let row = cells(table.lines().find(|l| l.starts_with(POOL)).unwrap());
    assert_eq!(row[3], "8.0 GiB", "{row:?}");
    assert_eq!(
        row[4], "2.0 GiB",
        "free: the cap less what is promised: {row:?}"
    );
    assert_eq!(&row[6..10], ["6.0 GiB", "0.75x", "4", "0"], "{row:?}");

    // 2 GiB more would promise more than the cap: RESOURCE_EXHAUSTED, said as the daemon says it.
    refused(
        &d.run_s(&format!("volume create {POOL} big --size 2G")),
        "cap; 2147483648 more would exceed it",
    );
    refused(
        &d.run_s(&format!("volume resize {POOL} v1 +2G")),
        "more would exceed it",
    );
    let listed = json(d, &format!("volume list {POOL}"));
    assert!(
        !listed.as_array().unwrap().iter().any(|v| v["id"] == "big"),
        "nothing made: {listed}"
    );
    assert_eq!(volume(d, "v1")["size_bytes"], 2 * GIB);
}

fn volumes_are_deleted_and_pool_files_listed(d: &TestDaemon) {
    assert_eq!(d.ok_s(&format!("volume delete {POOL} v3")), "v3  deleted\n");
    let ids: Vec<Value> = json(d, &format!("volume list {POOL}"))
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].clone())
        .collect();
    assert_eq!(ids, ["ov", "v1", "v2"]);
    let out = d.run_s(&format!("volume delete {POOL} v3"));
    assert_eq!(out.code, Some(1), "deleting it twice: {out:?}");

    std::fs::create_dir(d.dir.path().join("state/pools").join(POOL).join("iso")).unwrap();
    let files = json(d, &format!("pool files {POOL}"));
    let names: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for name in ["v1.qcow2", "v2.qcow2", "ov.qcow2", "iso"] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }
    let v1 = files
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "v1.qcow2")
        .unwrap();
    assert_eq!(v1["file_type"], "qcow2");
    let table = d.ok_s(&format!("pool files {POOL}"));
    assert!(table.starts_with("NAME "), "{table}");
    let rows: Vec<Vec<&str>> = table.lines().map(cells).collect();
    assert_eq!(
        rows[1][..3],
        ["iso/", "directory", "-"],
        "directories first: {table}"
    );
    assert!(
        rows.iter().any(|r| r[..2] == ["v1.qcow2", "qcow2"]),
        "{table}"
    );
    let out = d.run_s(&format!("pool files {POOL} iso"));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("no files in iso of pool"), "{out:?}");
}

fn argument_mistakes_are_refused_before_any_call(d: &TestDaemon) {
    for (args, needle) in [
        (
            "pool create x --capacity 1500M",
            "not a whole number of GiB",
        ),
        ("pool create x --nfs nas.example", "no ':/'"),
        ("volume create p v", "--size <SIZE>"),
        ("volume create p v --from-snapshot v1", "VOLUME@SNAPSHOT"),
        (
            "volume create p v --from-image i --from-volume w",
            "cannot be used with",
        ),
        ("volume resize p v -1G", "volumes only grow"),
    ] {
        let out = d.run_s(args);
        assert_eq!(out.code, Some(2), "{args}: {out:?}");
        assert!(out.stderr.contains(needle), "{args}: {}", out.stderr);
    }
    refused(
        &d.run_s("volume list nope"),
        "storage pool \"nope\" not found on this node",
    );
}

fn pool_delete_answers_and_forgets_the_pool(d: &TestDaemon) {
    // The daemon refuses only for a VM's disk; plain volumes do not hold the pool, and its
    // directory keeps them.
    assert_eq!(d.ok_s(&format!("pool delete {POOL}")), "local1  deleted\n");
    let pools = json(d, "pool list");
    assert!(
        !pools.as_array().unwrap().iter().any(|p| p["id"] == POOL),
        "{pools}"
    );
    let dir = d.dir.path().join("state/pools").join(POOL);
    assert!(dir.join("v1.qcow2").is_file(), "the volumes stay");
    refused(&d.run_s(&format!("pool show {POOL}")), "not found");
}
