//! A small ISO 9660 writer for NoCloud seeds: one root directory, Rock Ridge and Joliet names.
//!
//! # Layout
//!
//! Every image has the same shape (2048-byte sectors):
//!
//! | sector | contents |
//! |---|---|
//! | 0–15 | system area, zeros |
//! | 16 | primary volume descriptor, volume id `cidata` |
//! | 17 | Joliet supplementary volume descriptor (UCS-2 level 3), volume id `cidata` |
//! | 18 | volume descriptor set terminator |
//! | 19, 20 | primary path tables (L, M) |
//! | 21, 22 | Joliet path tables (L, M) |
//! | 23 | Rock Ridge continuation area holding the `ER` entry |
//! | 24… | primary root directory (8.3 names + Rock Ridge `NM`/`PX`/`TF`) |
//! | … | Joliet root directory |
//! | … | file data, one extent per file, in name order, each starting on a sector |
//!
//! Both directory trees point at the same file extents. An empty file has length 0 and points
//! at the sector where the next file would start, as `genisoimage` does.
//!
//! # Determinism
//!
//! The output depends only on the file set (not its order) and [`IsoOptions`]: every timestamp
//! is [`IsoOptions::timestamp`]; [`IsoOptions::from_env`] takes it from `SOURCE_DATE_EPOCH`.

mod bytes;
mod directory;
mod joliet;
mod rockridge;
mod time;

use crate::image::{ImageError, ImageFile, check_files};
use bytes::{both_u16, both_u32};
use directory::Record;
use rockridge::{MODE_DIR, MODE_FILE, RR_NM, RR_PX, RR_TF};
use time::{Civil, UNSPECIFIED_DATE};

pub use bytes::SECTOR;

/// The volume id cloud-init's NoCloud datasource looks for.
pub const CIDATA: &str = "cidata";

const PVD_SECTOR: u32 = 16;
const PATH_TABLES_SECTOR: u32 = 19;
const CONTINUATION_SECTOR: u32 = 23;
const ROOT_SECTOR: u32 = 24;
const SYSTEM_ID: &str = "LINUX";
const APPLICATION_ID: &str = "LIMIQUANTIX-NODE SEED WRITER";

/// How to write an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoOptions {
    /// Volume id of both the primary and the Joliet descriptor: 1 to 16 characters from
    /// `A-Z a-z 0-9 _ -`. Default `cidata`.
    pub volume_id: String,
    /// Unix time (seconds, UTC) recorded for the volume and every file. Default 0.
    pub timestamp: i64,
}

impl Default for IsoOptions {
    fn default() -> Self {
        Self {
            volume_id: CIDATA.to_owned(),
            timestamp: 0,
        }
    }
}

impl IsoOptions {
    /// Options with volume id `cidata` and every timestamp set to `timestamp` (Unix seconds).
    pub fn at(timestamp: i64) -> Self {
        Self {
            timestamp,
            ..Self::default()
        }
    }

    /// Options timestamped from `SOURCE_DATE_EPOCH` when it holds an integer, else the current
    /// time (what a command-line tool wants; libraries that need byte-identical output use
    /// [`IsoOptions::at`]).
    pub fn from_env() -> Self {
        let timestamp = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|value| value.trim().parse::<i64>().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            });
        Self::at(timestamp)
    }
}

/// Writes an ISO 9660 image holding `files` in its root directory.
///
/// Names are checked (see [`ImageError::InvalidName`]); files may be empty and up to
/// [`crate::image::MAX_FILE_BYTES`] each.
pub fn write(files: &[ImageFile<'_>], options: &IsoOptions) -> Result<Vec<u8>, ImageError> {
    check_volume_id(&options.volume_id)?;
    check_files(files, crate::image::MAX_FILE_BYTES)?;
    let mut files: Vec<ImageFile<'_>> = files.to_vec();
    files.sort_by(|a, b| a.name.cmp(b.name));

    let time = Civil::from_unix(options.timestamp);
    let record_time = time.record_bytes();
    let names: Vec<&str> = files.iter().map(|f| f.name).collect();
    let level1 = directory::level1_names(&names);

    let Layout {
        primary_size,
        joliet_size,
        joliet_root,
        extents,
        total,
        image_bytes,
    } = plan(&files, &level1, record_time)?;

    // Pass 2: the real records.
    let primary = directory::pack(&primary_records(
        &files,
        &level1,
        &extents,
        (ROOT_SECTOR, primary_size as u32),
        record_time,
    ));
    let joliet = directory::pack(&joliet_records(
        &files,
        &extents,
        (joliet_root, joliet_size as u32),
        record_time,
    ));

    let mut image = vec![0u8; image_bytes as usize];
    let at = |sector: u32| sector as usize * SECTOR;
    let descriptor = Descriptor {
        volume_id: &options.volume_id,
        total,
        time: time.descriptor_bytes(),
        record_time,
    };
    image[at(PVD_SECTOR)..at(PVD_SECTOR + 1)].copy_from_slice(&descriptor.primary(primary_size));
    image[at(PVD_SECTOR + 1)..at(PVD_SECTOR + 2)]
        .copy_from_slice(&descriptor.joliet(joliet_root, joliet_size));
    image[at(PVD_SECTOR + 2)..at(PVD_SECTOR + 2) + 7].copy_from_slice(b"\xFFCD001\x01");
    for (i, root) in [ROOT_SECTOR, ROOT_SECTOR, joliet_root, joliet_root]
        .into_iter()
        .enumerate()
    {
        let entry = path_table_entry(root, i % 2 == 1);
        let start = at(PATH_TABLES_SECTOR + i as u32);
        image[start..start + entry.len()].copy_from_slice(&entry);
    }
    let er = rockridge::er();
    image[at(CONTINUATION_SECTOR)..at(CONTINUATION_SECTOR) + er.len()].copy_from_slice(&er);
    image[at(ROOT_SECTOR)..at(ROOT_SECTOR) + primary.len()].copy_from_slice(&primary);
    image[at(joliet_root)..at(joliet_root) + joliet.len()].copy_from_slice(&joliet);
    for (file, extent) in files.iter().zip(&extents) {
        image[at(*extent)..at(*extent) + file.data.len()].copy_from_slice(file.data);
    }
    Ok(image)
}

/// Where everything goes: the directory sizes, each file's extent, the image's size.
struct Layout {
    primary_size: usize,
    joliet_size: usize,
    joliet_root: u32,
    extents: Vec<u32>,
    total: u32,
    image_bytes: u64,
}

/// Pass 1 of [`write`]: sizes and extents. Record lengths do not depend on extents, so the
/// directories are sized with zeros.
fn plan(
    files: &[ImageFile<'_>],
    level1: &[String],
    record_time: [u8; 7],
) -> Result<Layout, ImageError> {
    let primary_size = directory::packed_size(&primary_records(
        files,
        level1,
        &[0; 0],
        (0, 0),
        record_time,
    ));
    let joliet_size = directory::packed_size(&joliet_records(files, &[0; 0], (0, 0), record_time));
    let joliet_root = ROOT_SECTOR + sectors(primary_size);
    let mut next = joliet_root + sectors(joliet_size);
    let mut extents = Vec::with_capacity(files.len());
    for file in files {
        extents.push(next);
        next = next
            .checked_add(sectors(file.data.len()))
            .ok_or(ImageError::ImageTooLarge(u64::MAX))?;
    }
    // An empty last file points one sector past its predecessor's data: keep that sector.
    let total = if files.last().is_some_and(|f| f.data.is_empty()) {
        next + 1
    } else {
        next
    };
    let image_bytes = u64::from(total) * SECTOR as u64;
    if usize::try_from(image_bytes).is_err() {
        return Err(ImageError::ImageTooLarge(image_bytes));
    }
    Ok(Layout {
        primary_size,
        joliet_size,
        joliet_root,
        extents,
        total,
        image_bytes,
    })
}

fn check_volume_id(id: &str) -> Result<(), ImageError> {
    let ok = (1..=16).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ImageError::InvalidLabel {
            label: id.to_owned(),
            allowed: "1 to 16 characters from A-Z a-z 0-9 _ -",
        })
    }
}

fn sectors(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(SECTOR)).unwrap_or(u32::MAX)
}

/// `.` and `..` of a root directory at `(extent, size)`.
fn dot_records(root: (u32, u32), time: [u8; 7], rock_ridge: bool) -> [Record; 2] {
    let mut dot_su = Vec::new();
    let mut dotdot_su = Vec::new();
    if rock_ridge {
        rockridge::sp(&mut dot_su);
        for su in [&mut dot_su, &mut dotdot_su] {
            rockridge::rr(su, RR_PX | RR_TF);
            rockridge::px(su, MODE_DIR, 2);
            rockridge::tf(su, time);
        }
        rockridge::ce(
            &mut dot_su,
            CONTINUATION_SECTOR,
            rockridge::er().len() as u32,
        );
    }
    let record = |identifier: u8, system_use| Record {
        extent: root.0,
        size: root.1,
        time,
        directory: true,
        identifier: vec![identifier],
        system_use,
    };
    [record(0, dot_su), record(1, dotdot_su)]
}

/// The primary root directory: 8.3 identifiers in ECMA-119 order, Rock Ridge names.
fn primary_records(
    files: &[ImageFile<'_>],
    level1: &[String],
    extents: &[u32],
    root: (u32, u32),
    time: [u8; 7],
) -> Vec<Record> {
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| directory::level1_sort_key(&level1[i]));
    let mut records = dot_records(root, time, true).to_vec();
    records.extend(order.into_iter().map(|i| {
        let mut su = Vec::new();
        rockridge::rr(&mut su, RR_PX | RR_NM | RR_TF);
        rockridge::nm(&mut su, files[i].name);
        rockridge::px(&mut su, MODE_FILE, 1);
        rockridge::tf(&mut su, time);
        Record {
            extent: extents.get(i).copied().unwrap_or(0),
            size: files[i].data.len() as u32,
            time,
            directory: false,
            identifier: level1[i].as_bytes().to_vec(),
            system_use: su,
        }
    }));
    records
}

/// The Joliet root directory: UCS-2 identifiers in code-unit order.
fn joliet_records(
    files: &[ImageFile<'_>],
    extents: &[u32],
    root: (u32, u32),
    time: [u8; 7],
) -> Vec<Record> {
    let mut entries: Vec<(Vec<u8>, usize)> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (joliet::ucs2(f.name), i))
        .collect();
    entries.sort();
    let mut records = dot_records(root, time, false).to_vec();
    records.extend(entries.into_iter().map(|(_, i)| Record {
        extent: extents.get(i).copied().unwrap_or(0),
        size: files[i].data.len() as u32,
        time,
        directory: false,
        identifier: joliet::identifier(files[i].name),
        system_use: Vec::new(),
    }));
    records
}

/// Fields shared by the primary and the Joliet descriptor.
struct Descriptor<'a> {
    volume_id: &'a str,
    total: u32,
    time: [u8; 17],
    record_time: [u8; 7],
}

impl Descriptor<'_> {
    /// Fields common to both descriptors (ECMA-119 8.4), text fields left to the caller.
    fn common(&self, kind: u8, path_tables: u32, root: (u32, u32)) -> Vec<u8> {
        let mut d = vec![0u8; SECTOR];
        d[0] = kind;
        d[1..6].copy_from_slice(b"CD001");
        d[6] = 1;
        d[80..88].copy_from_slice(&both_u32(self.total));
        d[120..124].copy_from_slice(&both_u16(1)); // volume set size
        d[124..128].copy_from_slice(&both_u16(1)); // volume sequence number
        d[128..132].copy_from_slice(&both_u16(SECTOR as u16));
        d[132..140].copy_from_slice(&both_u32(10)); // path table: one 10-byte entry
        d[140..144].copy_from_slice(&path_tables.to_le_bytes());
        d[148..152].copy_from_slice(&(path_tables + 1).to_be_bytes());
        let mut root_record = Vec::with_capacity(34);
        Record {
            extent: root.0,
            size: root.1,
            time: self.record_time,
            directory: true,
            identifier: vec![0],
            system_use: Vec::new(),
        }
        .encode(&mut root_record);
        d[156..190].copy_from_slice(&root_record);
        d[813..830].copy_from_slice(&self.time); // creation
        d[830..847].copy_from_slice(&self.time); // modification
        d[847..864].copy_from_slice(&UNSPECIFIED_DATE); // expiration
        d[864..881].copy_from_slice(&self.time); // effective
        d[881] = 1; // file structure version
        d
    }

    fn primary(&self, root_size: usize) -> Vec<u8> {
        let mut d = self.common(1, PATH_TABLES_SECTOR, (ROOT_SECTOR, root_size as u32));
        d[8..40].copy_from_slice(&a_field(SYSTEM_ID, 32));
        d[40..72].copy_from_slice(&a_field(self.volume_id, 32));
        for range in [190..318, 318..446, 446..574, 702..739, 739..776, 776..813] {
            d[range.clone()].copy_from_slice(&a_field("", range.len()));
        }
        d[574..702].copy_from_slice(&a_field(APPLICATION_ID, 128));
        d
    }

    fn joliet(&self, root: u32, root_size: usize) -> Vec<u8> {
        let mut d = self.common(2, PATH_TABLES_SECTOR + 2, (root, root_size as u32));
        d[8..40].copy_from_slice(&joliet::ucs2_field(SYSTEM_ID, 32));
        d[40..72].copy_from_slice(&joliet::ucs2_field(self.volume_id, 32));
        d[88..91].copy_from_slice(&joliet::ESCAPE_LEVEL3);
        for range in [190..318, 318..446, 446..574, 702..739, 739..776, 776..813] {
            d[range.clone()].copy_from_slice(&joliet::ucs2_field("", range.len()));
        }
        d[574..702].copy_from_slice(&joliet::ucs2_field(APPLICATION_ID, 128));
        d
    }
}

/// A space-padded ASCII descriptor field.
fn a_field(text: &str, len: usize) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    out.resize(len, b' ');
    out
}

/// The single path-table entry of a root-only tree: little-endian (L) or big-endian (M).
fn path_table_entry(root: u32, big_endian: bool) -> [u8; 10] {
    let mut e = [0u8; 10];
    e[0] = 1; // identifier length
    if big_endian {
        e[2..6].copy_from_slice(&root.to_be_bytes());
        e[6..8].copy_from_slice(&1u16.to_be_bytes());
    } else {
        e[2..6].copy_from_slice(&root.to_le_bytes());
        e[6..8].copy_from_slice(&1u16.to_le_bytes());
    }
    e
}
