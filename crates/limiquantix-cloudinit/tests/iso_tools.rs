//! The ISO writer's output read back by real tools: blkid, xorriso, isoinfo.

mod common;

use common::{put, run, run_text};
use limiquantix_cloudinit::image::ImageFile;
use limiquantix_cloudinit::iso9660::{self, IsoOptions};

fn seed_files(big: &[u8]) -> Vec<ImageFile<'_>> {
    vec![
        ImageFile::new("user-data", b"#cloud-config\nhostname: web1\n"),
        ImageFile::new("meta-data", b"instance-id: iid-1\nlocal-hostname: web1\n"),
        ImageFile::new("network-config", b"version: 2\nethernets: {}\n"),
        ImageFile::new("vendor-data", b""),
        ImageFile::new("big-file.bin", big),
        ImageFile::new("Ünïcode name.txt", "ünïcode ✓\n".as_bytes()),
    ]
}

fn big_file() -> Vec<u8> {
    // 16 MiB + 3 bytes of a non-repeating-per-sector pattern.
    (0..16 * 1024 * 1024 + 3u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[test]
fn blkid_reports_iso9660_cidata() {
    let dir = tempfile::tempdir().unwrap();
    let iso = iso9660::write(&seed_files(b"x"), &IsoOptions::at(1_700_000_000)).unwrap();
    let path = put(dir.path(), "seed.iso", &iso);
    let out = run_text("blkid", &["-p", "-o", "export", &path]);
    assert!(out.contains("\nTYPE=iso9660\n"), "{out}");
    assert!(out.contains("\nLABEL=cidata\n"), "{out}");
    assert!(out.contains("VERSION=Joliet"), "{out}");
    // The UUID blkid shows comes from the creation date.
    assert!(out.contains("UUID=2023-11-14-22-13-20-00"), "{out}");
}

#[test]
fn xorriso_and_isoinfo_see_rock_ridge_and_joliet() {
    let dir = tempfile::tempdir().unwrap();
    let iso = iso9660::write(&seed_files(b"x"), &IsoOptions::default()).unwrap();
    let path = put(dir.path(), "seed.iso", &iso);

    let toc = run_text("xorriso", &["-indev", &path, "-toc"]);
    let offers = toc
        .lines()
        .find(|l| l.starts_with("ISO offers"))
        .unwrap_or_else(|| panic!("no 'ISO offers' line:\n{toc}"));
    assert!(offers.contains("Rock_Ridge"), "{toc}");
    assert!(offers.contains("Joliet"), "{toc}");
    assert!(
        toc.lines()
            .any(|l| l.starts_with("ISO session") && l.trim_end().ends_with("cidata")),
        "{toc}"
    );

    let info = run_text("isoinfo", &["-d", "-i", &path]);
    assert!(info.contains("Volume id: cidata"), "{info}");
    assert!(info.contains("Joliet with UCS level 3 found"), "{info}");
    assert!(
        info.contains("Rock Ridge signatures version 1 found"),
        "{info}"
    );
    assert!(info.contains("Logical block size is: 2048"), "{info}");
    let joliet = run_text("isoinfo", &["-d", "-J", "-i", &path]);
    assert!(joliet.contains("Volume id: cidata"), "{joliet}");

    // Rock Ridge names as Linux sees them, and Joliet names as Windows sees them.
    let rr = run_text("isoinfo", &["-R", "-f", "-i", &path]);
    let mut names: Vec<&str> = rr.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "/big-file.bin",
            "/meta-data",
            "/network-config",
            "/user-data",
            "/vendor-data",
            "/Ünïcode name.txt"
        ]
    );
    let jl = run_text("isoinfo", &["-J", "-f", "-i", &path]);
    assert!(jl.lines().any(|l| l == "/user-data"), "{jl}");
    assert_eq!(jl.lines().count(), 6, "{jl}");
}

#[test]
fn xorriso_extracts_byte_identical_files() {
    let dir = tempfile::tempdir().unwrap();
    let big = big_file();
    let files = seed_files(&big);
    let iso = iso9660::write(&files, &IsoOptions::default()).unwrap();
    let path = put(dir.path(), "seed.iso", &iso);
    let out = dir.path().join("out");
    extract(&path, &out);
    let mut found: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    found.sort();
    let mut expected: Vec<String> = files.iter().map(|f| f.name.to_owned()).collect();
    expected.sort();
    assert_eq!(found, expected);
    for file in &files {
        let got = std::fs::read(out.join(file.name)).unwrap();
        assert!(got == file.data, "{} differs after extraction", file.name);
    }
}

#[test]
fn only_empty_files_and_no_files() {
    let dir = tempfile::tempdir().unwrap();
    for files in [
        vec![],
        vec![
            ImageFile::new("meta-data", b""),
            ImageFile::new("user-data", b""),
        ],
    ] {
        let iso = iso9660::write(&files, &IsoOptions::default()).unwrap();
        let path = put(dir.path(), "seed.iso", &iso);
        let rr = run_text("isoinfo", &["-R", "-l", "-i", &path]);
        for file in &files {
            assert!(rr.contains(file.name), "{rr}");
        }
        let out = dir.path().join(format!("out{}", files.len()));
        extract(&path, &out);
        for file in &files {
            assert_eq!(std::fs::read(out.join(file.name)).unwrap(), b"");
        }
    }
}

/// Extracts the whole image with `xorriso -osirrox on -extract / OUT`.
fn extract(iso: &str, out: &std::path::Path) {
    let out = out.to_str().unwrap();
    run(
        "xorriso",
        &["-osirrox", "on", "-indev", iso, "-extract", "/", out],
    );
}
