//! Storage tests on real images made by `qemu-img` and `sfdisk`.

use std::path::Path;
use std::process::Command;

use super::*;
use crate::fixtures::partitioned;
use limiquantix_vm::model::DiskFormat;

const QEMU_IMG: &str = "qemu-img";

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `qemu-img create -q <opts> <file> <size>`.
fn img_create(opts: &[&str], file: &Path, size: &str) {
    let mut args = vec!["create", "-q"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&[s(file), size]);
    run(QEMU_IMG, &args);
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn header(p: &Path) -> Qcow2Header {
    match detect_format(p).unwrap() {
        DetectedFormat::Qcow2(h) => h,
        other => panic!("{p:?}: {other:?}"),
    }
}

/// Hides the backing-format extension (as images from old QEMU versions lack it) by changing its
/// type to one QEMU ignores; `qemu-img info` then reports no backing format.
fn drop_backing_format(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    let at = b
        .windows(4)
        .position(|w| w == qcow2::EXT_BACKING_FORMAT.to_be_bytes())
        .unwrap();
    b[at..at + 4].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    std::fs::write(p, b).unwrap();
    let info = run(QEMU_IMG, &["info", "-U", s(p)]);
    assert!(!info.contains("backing file format"), "{info}");
}

#[test]
fn reads_headers_of_real_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (compat, version) in [("0.10", 2), ("1.1", 3)] {
        let base = d.join(format!("base-{version}.qcow2"));
        let over = d.join(format!("over-{version}.qcow2"));
        let compat = format!("compat={compat}");
        img_create(&["-f", "qcow2", "-o", &compat], &base, "64M");
        let h = header(&base);
        assert_eq!(
            (h.version, h.virtual_size, h.backing_file.clone()),
            (version, 64 << 20, None)
        );
        assert_eq!(h.cluster_size(), 65536);
        img_create(
            &["-f", "qcow2", "-o", &compat, "-F", "qcow2", "-b", s(&base)],
            &over,
            "128M",
        );
        let h = header(&over);
        assert_eq!(h.version, version);
        assert_eq!(h.virtual_size, 128 << 20);
        assert_eq!(h.backing_path(), Some(base.as_path()));
        assert_eq!(h.backing_format.as_deref(), Some("qcow2"));
        drop_backing_format(&over);
        let h = header(&over);
        assert_eq!(h.backing_path(), Some(base.as_path()));
        assert_eq!(h.backing_format, None);
    }
    // A raw backing file is recorded as raw.
    let raw = d.join("base.img");
    std::fs::write(&raw, vec![0u8; 1 << 20]).unwrap();
    let over = d.join("over-raw.qcow2");
    img_create(&["-f", "qcow2", "-F", "raw", "-b", s(&raw)], &over, "1M");
    assert_eq!(header(&over).backing_format.as_deref(), Some("raw"));
    assert_eq!(
        detect_format(&raw).unwrap(),
        DetectedFormat::Raw { size: 1 << 20 }
    );
}

#[test]
fn fifos_and_directories_are_not_images() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    run("mkfifo", &[s(&fifo)]);
    for p in [fifo.as_path(), dir.path()] {
        let e = detect_format(p).unwrap_err();
        assert!(matches!(e, StorageError::NotAnImage { .. }), "{e}");
    }
}

#[test]
fn other_formats_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for fmt in ["vmdk", "vdi", "vhdx", "vpc", "qed"] {
        let p = dir.path().join(format!("x.{fmt}"));
        img_create(&["-f", fmt], &p, "16M");
        let e = detect_format(&p).unwrap_err();
        assert!(
            matches!(e, StorageError::UnsupportedFormat { .. }),
            "{fmt}: {e}"
        );
        let msg = e.to_string();
        assert!(msg.contains(fmt) || fmt == "vpc", "{msg}");
        assert!(msg.contains("qemu-img convert -O qcow2"), "{msg}");
    }
}

#[tokio::test]
async fn overlays_and_blank_disks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let qi = Path::new(QEMU_IMG);
    let base = d.join("base.qcow2");
    img_create(&["-f", "qcow2"], &base, "64M");

    let over = d.join("disk-0.qcow2");
    let h = create_overlay(qi, &base, &over, 1 << 30).await.unwrap();
    assert_eq!(h.virtual_size, 1 << 30);
    assert_eq!(h.backing_format.as_deref(), Some("qcow2"));
    let info = run(QEMU_IMG, &["info", "--output=json", s(&over)]);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["backing-filename-format"], "qcow2");
    assert_eq!(info["full-backing-filename"], s(&base));

    // Never overwritten, never smaller than the backing, backing must be absolute.
    let e = create_overlay(qi, &base, &over, 1 << 30).await.unwrap_err();
    assert!(matches!(e, StorageError::AlreadyExists { .. }), "{e}");
    let small = d.join("small.qcow2");
    let e = create_overlay(qi, &base, &small, 32 << 20)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("ask for at least 67108864 bytes"),
        "{e}"
    );
    assert!(!small.exists());
    let e = create_overlay(qi, Path::new("base.qcow2"), &small, 1 << 30)
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::BackingNotAbsolute { .. }), "{e}");
    let vmdk = d.join("x.vmdk");
    img_create(&["-f", "vmdk"], &vmdk, "16M");
    let e = create_overlay(qi, &vmdk, &small, 1 << 30)
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::UnsupportedFormat { .. }), "{e}");

    // An overlay on a raw image records raw, with the raw file's size as the floor.
    let raw = d.join("base,with comma.img");
    std::fs::write(&raw, vec![0u8; 2 << 20]).unwrap();
    let over_raw = d.join("disk-1.qcow2");
    let h = create_overlay(qi, &raw, &over_raw, 2 << 20).await.unwrap();
    assert_eq!(h.backing_format.as_deref(), Some("raw"));
    assert_eq!(h.backing_path(), Some(raw.as_path()));

    let blank_q = d.join("disk-2.qcow2");
    create_blank(qi, &blank_q, DiskFormat::Qcow2, 8 << 20)
        .await
        .unwrap();
    assert_eq!(header(&blank_q).virtual_size, 8 << 20);
    let blank_r = d.join("disk-3.img");
    create_blank(qi, &blank_r, DiskFormat::Raw, 8 << 20)
        .await
        .unwrap();
    assert_eq!(
        detect_format(&blank_r).unwrap(),
        DetectedFormat::Raw { size: 8 << 20 }
    );
    let e = create_blank(qi, &blank_r, DiskFormat::Raw, 8 << 20)
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::AlreadyExists { .. }), "{e}");
    let e = create_blank(
        Path::new("/nonexistent/qemu-img"),
        &d.join("n.qcow2"),
        DiskFormat::Qcow2,
        1 << 20,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, StorageError::Spawn { .. }), "{e}");
}

#[test]
fn boot_inspection_of_raw_and_qcow2_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bios = partitioned(
        d,
        "bios.img",
        "label: dos\nstart=2048, type=83, bootable\n",
        true,
    );
    let uefi = partitioned(
        d,
        "uefi.img",
        "label: gpt\nsize=4MiB, type=U\ntype=L\n",
        false,
    );
    let hybrid = partitioned(
        d,
        "hybrid.img",
        "label: gpt\nsize=1MiB, type=21686148-6449-6E6F-744E-656564454649\nsize=4MiB, type=U\ntype=L\n",
        true,
    );
    let blank = d.join("blank.img");
    std::fs::write(&blank, vec![0u8; 1 << 20]).unwrap();

    let i = inspect_boot(&bios).unwrap();
    assert_eq!(i.table, PartitionTable::Mbr);
    assert!(i.bios_bootable() && !i.uefi_bootable(), "{i:?}");
    let i = inspect_boot(&uefi).unwrap();
    assert_eq!(i.table, PartitionTable::Gpt);
    assert!(!i.bios_bootable() && i.uefi_bootable(), "{i:?}");
    let i = inspect_boot(&hybrid).unwrap();
    assert!(
        i.bios_bootable() && i.uefi_bootable() && i.bios_boot_partition,
        "{i:?}"
    );
    let i = inspect_boot(&blank).unwrap();
    assert_eq!(i.table, PartitionTable::None);
    assert!(!i.bios_bootable() && !i.uefi_bootable());

    // The same through qcow2: plain, compressed (v2 and v3), and an overlay reading its backing.
    for (src, want) in [
        (&bios, (true, false)),
        (&uefi, (false, true)),
        (&hybrid, (true, true)),
    ] {
        for (n, extra) in [
            ("plain", &[][..]),
            ("c3", &["-c"][..]),
            ("c2", &["-c", "-o", "compat=0.10"][..]),
        ] {
            let q = src.with_extension(format!("{n}.qcow2"));
            let mut args = vec!["convert", "-q", "-f", "raw", "-O", "qcow2"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&[s(src), s(&q)]);
            run(QEMU_IMG, &args);
            let i = inspect_boot(&q).unwrap();
            assert_eq!((i.bios_bootable(), i.uefi_bootable()), want, "{q:?} {i:?}");
            let over = src.with_extension(format!("{n}.over.qcow2"));
            img_create(&["-f", "qcow2", "-F", "qcow2", "-b", s(&q)], &over, "16M");
            let i = inspect_boot(&over).unwrap();
            assert_eq!(
                (i.bios_bootable(), i.uefi_bootable()),
                want,
                "{over:?} {i:?}"
            );
        }
    }
    // Guest bytes through a qcow2 match the raw source exactly.
    let q = bios.with_extension("c3.qcow2");
    let raw = std::fs::read(&bios).unwrap();
    assert_eq!(
        guest::read_guest_start(&q, 300_000).unwrap(),
        raw[..300_000]
    );
}

#[test]
fn sources_are_checked_with_the_field_named() {
    use limiquantix_vm::model::fixtures::cloud_vm;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = d.join("base.qcow2");
    img_create(&["-f", "qcow2"], &base, "16M");
    let mut def = cloud_vm();
    let e = check_sources(&def).unwrap_err();
    assert!(
        e.to_string().starts_with("disks[0].source.backing: "),
        "{e}"
    );
    def.disks[0].source = limiquantix_vm::model::DiskSource::Overlay {
        backing: base.clone(),
        size_bytes: 16 << 20,
    };
    check_sources(&def).unwrap();

    def.disks[0].source = limiquantix_vm::model::DiskSource::Path { path: base.clone() };
    def.disks[0].format = DiskFormat::Raw;
    let e = check_sources(&def).unwrap_err();
    assert!(e.to_string().contains("set format to qcow2"), "{e}");
    def.disks[0].format = DiskFormat::Qcow2;
    check_sources(&def).unwrap();

    let over = d.join("over.qcow2");
    img_create(
        &["-f", "qcow2", "-F", "qcow2", "-b", s(&base)],
        &over,
        "16M",
    );
    drop_backing_format(&over);
    def.disks[0].source = limiquantix_vm::model::DiskSource::Path { path: over };
    let e = check_sources(&def).unwrap_err();
    assert!(
        matches!(e, StorageError::BackingFormatMissing { .. }),
        "{e}"
    );

    def.disks[0].source = limiquantix_vm::model::DiskSource::Path { path: base };
    def.cdroms[0].path = Some(d.join("missing.iso"));
    check_sources(&def).unwrap(); // the seed is the backend's to write
    def.cdroms[0].role = limiquantix_vm::model::CdromRole::Media;
    let e = check_sources(&def).unwrap_err();
    assert!(e.to_string().starts_with("cdroms[0].path: "), "{e}");
}

#[tokio::test]
async fn grow_image_grows_qcow2_overlays_and_raw_never_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let qi = Path::new(QEMU_IMG);
    let base = d.join("base.qcow2");
    img_create(&["-f", "qcow2"], &base, "16M");
    let over = d.join("over.qcow2");
    create_overlay(qi, &base, &over, 32 << 20).await.unwrap();

    grow_image(qi, &over, DiskFormat::Qcow2, 64 << 20)
        .await
        .unwrap();
    let h = header(&over);
    assert_eq!(h.virtual_size, 64 << 20);
    assert_eq!(h.backing_path(), Some(base.as_path()), "the backing stays");
    assert_eq!(h.backing_format.as_deref(), Some("qcow2"));
    assert_eq!(
        header(&base).virtual_size,
        16 << 20,
        "the backing is not touched"
    );

    // Smaller: qemu-img refuses without --shrink, the image is unchanged.
    let e = grow_image(qi, &over, DiskFormat::Qcow2, 32 << 20)
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::QemuImg { .. }), "{e}");
    assert_eq!(header(&over).virtual_size, 64 << 20);

    let raw = d.join("disk.img");
    create_blank(qi, &raw, DiskFormat::Raw, 4 << 20)
        .await
        .unwrap();
    grow_image(qi, &raw, DiskFormat::Raw, 8 << 20)
        .await
        .unwrap();
    assert_eq!(
        detect_format(&raw).unwrap(),
        DetectedFormat::Raw { size: 8 << 20 }
    );
}
