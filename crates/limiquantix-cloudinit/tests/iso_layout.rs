//! Golden layout of the ISO writer and property tests reading images back with `hadris-iso`.

use std::collections::BTreeMap;
use std::io::Cursor;

use hadris_iso::read::IsoImage;
use limiquantix_cloudinit::image::ImageFile;
use limiquantix_cloudinit::iso9660::{self, IsoOptions, SECTOR};
use proptest::prelude::*;

fn sector(image: &[u8], n: usize) -> &[u8] {
    &image[n * SECTOR..(n + 1) * SECTOR]
}

fn seed() -> Vec<u8> {
    let files = [
        ImageFile::new("user-data", b"#cloud-config\n"),
        ImageFile::new("meta-data", b"instance-id: iid-1\n"),
        ImageFile::new("vendor-data", b""),
    ];
    iso9660::write(&files, &IsoOptions::at(1_700_000_000)).unwrap()
}

#[test]
fn golden_layout() {
    let image = seed();
    // 16 system sectors, 3 descriptors, 4 path tables, ER, 2 directories, 2 data sectors, and
    // the sector the empty last file points at.
    assert_eq!(image.len(), 29 * SECTOR);
    assert!(image[..16 * SECTOR].iter().all(|&b| b == 0));
    let pvd = sector(&image, 16);
    assert_eq!(&pvd[..8], b"\x01CD001\x01\x00");
    assert_eq!(&pvd[40..72], format!("{:<32}", "cidata").as_bytes());
    assert_eq!(&pvd[80..88], [29, 0, 0, 0, 0, 0, 0, 29]);
    assert_eq!(&pvd[813..830], b"2023111422132000\0");
    // Root record: extent 24, one sector.
    assert_eq!(
        &pvd[156..174],
        [34, 0, 24, 0, 0, 0, 0, 0, 0, 24, 0, 8, 0, 0, 0, 0, 8, 0]
    );
    let svd = sector(&image, 17);
    assert_eq!(&svd[..7], b"\x02CD001\x01");
    assert_eq!(&svd[88..91], b"%/E");
    assert_eq!(&svd[40..52], b"\0c\0i\0d\0a\0t\0a");
    assert_eq!(&svd[52..54], b"\0 ");
    assert_eq!(&svd[158..162], [25, 0, 0, 0], "Joliet root at sector 25");
    assert_eq!(&sector(&image, 18)[..7], b"\xFFCD001\x01");
    // Path tables: L (LE) then M (BE) for each tree.
    assert_eq!(&sector(&image, 19)[..10], [1, 0, 24, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(&sector(&image, 20)[..10], [1, 0, 0, 0, 0, 24, 0, 1, 0, 0]);
    assert_eq!(&sector(&image, 21)[..10], [1, 0, 25, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(&sector(&image, 22)[..10], [1, 0, 0, 0, 0, 25, 0, 1, 0, 0]);
    // Rock Ridge ER in the continuation area.
    assert_eq!(
        &sector(&image, 23)[..8],
        [b'E', b'R', 237, 1, 10, 84, 135, 1]
    );
    assert_eq!(&sector(&image, 23)[8..18], b"RRIP_1991A");
    // The root's `.` record starts the System Use area with SP, ends it with CE -> sector 23.
    let root = sector(&image, 24);
    assert_eq!(root[0], 136);
    assert_eq!(&root[34..41], [b'S', b'P', 7, 1, 0xBE, 0xEF, 0]);
    assert_eq!(
        &root[108..120],
        [b'C', b'E', 28, 1, 23, 0, 0, 0, 0, 0, 0, 23]
    );
    // Data in name order: meta-data (26), user-data (27), vendor-data empty -> 28.
    assert_eq!(&sector(&image, 26)[..19], b"instance-id: iid-1\n");
    assert_eq!(&sector(&image, 27)[..14], b"#cloud-config\n");
    let records = records(root);
    let names: Vec<&str> = records.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        ["\0", "\x01", "META_DAT.;1", "USER_DAT.;1", "VENDOR_D.;1"]
    );
    let extents: Vec<(u32, u32)> = records.iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(
        extents,
        [(24, 2048), (24, 2048), (26, 19), (27, 14), (28, 0)]
    );
}

/// (identifier, extent, size) of each record in a directory sector.
fn records(dir: &[u8]) -> Vec<(String, u32, u32)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < dir.len() && dir[at] != 0 {
        let r = &dir[at..at + usize::from(dir[at])];
        let le = |o: usize| u32::from_le_bytes(r[o..o + 4].try_into().unwrap());
        let be = |o: usize| u32::from_be_bytes(r[o + 4..o + 8].try_into().unwrap());
        assert_eq!(le(2), be(2), "both-endian extent");
        assert_eq!(le(10), be(10), "both-endian size");
        let id = String::from_utf8_lossy(&r[33..33 + usize::from(r[32])]).into_owned();
        out.push((id, le(2), le(10)));
        at += r.len();
    }
    out
}

#[test]
fn deterministic_and_order_independent() {
    let a = [ImageFile::new("b", b"1"), ImageFile::new("a", b"2")];
    let b = [a[1], a[0]];
    let options = IsoOptions::at(42);
    assert_eq!(
        iso9660::write(&a, &options).unwrap(),
        iso9660::write(&b, &options).unwrap()
    );
    assert_ne!(
        iso9660::write(&a, &options).unwrap(),
        iso9660::write(&a, &IsoOptions::at(43)).unwrap()
    );
}

#[test]
fn bad_volume_ids_are_refused() {
    for id in ["", "seventeen-chars-x", "has space", "dé"] {
        let options = IsoOptions {
            volume_id: id.into(),
            ..IsoOptions::default()
        };
        assert!(iso9660::write(&[], &options).is_err(), "{id:?}");
    }
}

/// Reads every tree of `image` with hadris-iso: tree kind -> (name -> contents).
fn read_back(image: Vec<u8>) -> Vec<(bool, BTreeMap<String, Vec<u8>>)> {
    let iso = IsoImage::open(Cursor::new(image)).unwrap();
    assert!(iso.supports_rrip(), "Rock Ridge not detected");
    let mut trees = Vec::new();
    for root in iso.root_dirs().iter() {
        let joliet = matches!(
            root.entry_type(),
            hadris_iso::file::EntryType::Joliet { .. }
        );
        let mut files = BTreeMap::new();
        for entry in root.iter(&iso).entries() {
            let entry = entry.unwrap();
            if entry.is_special() {
                continue;
            }
            let name = if joliet {
                let units: Vec<u16> = entry
                    .name()
                    .chunks_exact(2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]))
                    .collect();
                String::from_utf16(&units).unwrap()
            } else {
                entry.display_name().into_owned()
            };
            files.insert(name, iso.read_file(&entry).unwrap());
        }
        trees.push((joliet, files));
    }
    trees
}

fn file_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_\\-é✓][a-zA-Z0-9_.\\- é✓]{0,40}[a-zA-Z0-9_\\-é✓]"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn round_trips_through_hadris(
        files in prop::collection::btree_map(
            file_name(),
            prop::collection::vec(any::<u8>(), 0..6000),
            0..12,
        ),
        timestamp in 0i64..4_000_000_000,
    ) {
        let list: Vec<ImageFile<'_>> =
            files.iter().map(|(n, d)| ImageFile::new(n, d)).collect();
        let image = iso9660::write(&list, &IsoOptions::at(timestamp)).unwrap();
        let trees = read_back(image);
        prop_assert_eq!(trees.len(), 2, "one primary and one Joliet tree");
        prop_assert!(trees.iter().any(|t| t.0), "Joliet tree present");
        for (_, tree) in trees {
            prop_assert_eq!(&tree, &files);
        }
    }
}
