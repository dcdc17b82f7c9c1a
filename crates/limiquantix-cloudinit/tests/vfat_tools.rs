//! The vfat writer's output read back by blkid and mtools.

mod common;

use common::{put, run, run_text};
use limiquantix_cloudinit::image::ImageFile;
use limiquantix_cloudinit::vfat::{self, VfatOptions};

#[test]
fn blkid_and_mtools_read_the_fat_seed() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..16 * 1024 * 1024 + 1u32)
        .map(|i| (i % 251) as u8)
        .collect();
    let files = [
        ImageFile::new("user-data", b"#cloud-config\n"),
        ImageFile::new("meta-data", b"instance-id: iid-1\n"),
        ImageFile::new("network-config", &big),
        ImageFile::new("vendor-data", b""),
    ];
    let image = vfat::write(&files, &VfatOptions::default()).unwrap();
    let path = put(dir.path(), "seed.img", &image);

    let out = run_text("blkid", &["-p", "-o", "export", &path]);
    assert!(out.contains("\nTYPE=vfat\n"), "{out}");
    assert!(out.contains("\nLABEL=CIDATA\n"), "{out}");

    let listing = run_text("mdir", &["-i", &path, "-b", "::/"]);
    for file in &files {
        assert!(listing.contains(&format!("::/{}", file.name)), "{listing}");
        let target = dir.path().join(file.name);
        let src = format!("::/{}", file.name);
        run(
            "mcopy",
            &["-n", "-i", &path, &src, target.to_str().unwrap()],
        );
        assert!(
            std::fs::read(&target).unwrap() == file.data,
            "{} differs",
            file.name
        );
    }
}
