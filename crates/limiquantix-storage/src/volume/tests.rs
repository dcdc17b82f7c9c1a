//! Volume tests against real files and the real `qemu-img`.

use super::copy::parse_progress;
use super::*;
use crate::error::StorageError;
use limiquantix_vm::model::DiskFormat;
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;

fn qemu_img() -> PathBuf {
    PathBuf::from("qemu-img")
}

fn id(s: &str) -> VolumeId {
    VolumeId::parse("volume_id", s).unwrap()
}

async fn blank(dir: &Path, name: &str, size: u64) -> PathBuf {
    let path = volume_file(dir, &id(name), DiskFormat::Qcow2);
    crate::create_blank(&qemu_img(), &path, DiskFormat::Qcow2, size)
        .await
        .unwrap();
    path
}

#[test]
fn ids_are_checked() {
    for good in [
        "a",
        "disk-0",
        "0b6f3a52-8d1e-4c55-9a7e-2f1c0e9d4b21",
        "v.1_x",
    ] {
        assert!(VolumeId::parse("volume_id", good).is_ok(), "{good}");
    }
    for bad in ["", ".hidden", "a/b", "..", "a b", &"x".repeat(65), "é"] {
        let e = VolumeId::parse("volume_id", bad).unwrap_err();
        assert!(matches!(e, StorageError::BadName { .. }), "{bad}");
        assert!(e.to_string().starts_with("volume_id: "), "{e}");
    }
}

#[test]
fn qemu_img_progress_lines_parse() {
    assert_eq!(parse_progress("    (42.17/100%)"), Some(42.17));
    assert_eq!(parse_progress("(100.00/100%)"), Some(100.0));
    assert_eq!(parse_progress("error"), None);
}

#[tokio::test]
async fn volumes_grow_snapshot_copy_and_list() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = blank(dir, "a", 64 * MIB).await;
    // Grow only.
    assert_eq!(
        resize_image(&qemu_img(), &a, 128 * MIB).await.unwrap(),
        64 * MIB
    );
    let shrink = resize_image(&qemu_img(), &a, 32 * MIB).await.unwrap_err();
    assert!(matches!(shrink, StorageError::Shrink { current, .. } if current == 128 * MIB));
    assert!(matches!(
        resize_image(&qemu_img(), &a, 1000).await,
        Err(StorageError::BadSize(1000))
    ));
    // Snapshots: qcow2 only, names unique.
    create_snapshot(&qemu_img(), &a, "s1").await.unwrap();
    create_snapshot(&qemu_img(), &a, "s2").await.unwrap();
    assert!(matches!(
        create_snapshot(&qemu_img(), &a, "s1").await,
        Err(StorageError::Snapshot { .. })
    ));
    assert!(matches!(
        create_snapshot(&qemu_img(), &a, "../x").await,
        Err(StorageError::BadName { .. })
    ));
    let raw = volume_file(dir, &id("r"), DiskFormat::Raw);
    crate::create_blank(&qemu_img(), &raw, DiskFormat::Raw, 8 * MIB)
        .await
        .unwrap();
    assert!(matches!(
        create_snapshot(&qemu_img(), &raw, "s").await,
        Err(StorageError::RawSnapshot { .. })
    ));
    // A full copy of a snapshot, grown, with progress to 100.
    let mut seen = Vec::new();
    let b = volume_file(dir, &id("b"), DiskFormat::Qcow2);
    let src = CopySource {
        path: a.clone(),
        snapshot: Some("s1".into()),
    };
    let size = copy_to_qcow2(&qemu_img(), &src, &b, Some(256 * MIB), |p| seen.push(p))
        .await
        .unwrap();
    assert_eq!(size, 256 * MIB);
    assert_eq!(seen.last(), Some(&100.0));
    // Never over an existing file; nothing partial left behind on failure.
    let again = copy_to_qcow2(&qemu_img(), &src, &b, None, |_| {}).await;
    assert!(matches!(again, Err(StorageError::AlreadyExists { .. })));
    let missing = CopySource {
        path: a.clone(),
        snapshot: Some("nope".into()),
    };
    let c = volume_file(dir, &id("c"), DiskFormat::Qcow2);
    assert!(
        copy_to_qcow2(&qemu_img(), &missing, &c, None, |_| {})
            .await
            .is_err()
    );
    assert!(!c.exists());

    let listed = list_volumes(dir).unwrap();
    let ids: Vec<_> = listed.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "r"], "no partial file is a volume");
    assert_eq!(listed[0].snapshots, ["s1", "s2"]);
    assert_eq!(listed[0].virtual_size, 128 * MIB);
    assert_eq!(listed[1].virtual_size, 256 * MIB);
    assert!(listed[1].snapshots.is_empty() && listed[1].backing_file.is_none());
    assert_eq!(listed[2].format, DiskFormat::Raw);
    assert_eq!(find_volume(dir, &id("r")), Some(raw.clone()));
    assert_eq!(find_volume(dir, &id("zz")), None);
    let usage = pool_usage(dir).unwrap();
    assert_eq!(usage.volumes, 3);
    assert_eq!(usage.provisioned, (128 + 256 + 8) * MIB);
    assert!(
        usage.allocated < usage.provisioned,
        "thin volumes: {usage:?}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&blockdev_json(&a, DiskFormat::Qcow2, "v-fmt")).unwrap();
    assert_eq!(json["driver"], "qcow2");
    assert_eq!(json["file"]["filename"], a.display().to_string());
}

#[test]
fn a_symlink_is_no_volume() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("outside"), b"x").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("outside"), tmp.path().join("v.qcow2")).unwrap();
    assert_eq!(find_volume(tmp.path(), &id("v")), None);
}
