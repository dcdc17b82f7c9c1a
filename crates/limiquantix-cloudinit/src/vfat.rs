//! A FAT image labelled `CIDATA`, for guests that read the seed from a vfat disk.
//!
//! The image is sized to its files (at least 1 MiB), formatted by the `fatfs` crate with label
//! `CIDATA` and a fixed volume serial, and holds the files under their long names in the root
//! directory. File times are the FAT epoch (1980-01-01), so the output is deterministic.

use std::io::{Cursor, Write};

use crate::image::{ImageError, ImageFile, check_files};

/// The volume label cloud-init's NoCloud datasource accepts on a FAT seed.
pub const CIDATA_LABEL: &str = "CIDATA";

/// Largest file a FAT image holds (4 GiB - 1), further limited by the image size.
const MAX_FAT_FILE: usize = u32::MAX as usize;

/// How to write a FAT image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfatOptions {
    /// Volume label: 1 to 11 characters from `A-Z 0-9 _ -`. Default `CIDATA`.
    pub label: String,
    /// Volume serial number. Default `0x1d5eed00`.
    pub volume_id: u32,
}

impl Default for VfatOptions {
    fn default() -> Self {
        Self {
            label: CIDATA_LABEL.to_owned(),
            volume_id: 0x1d5e_ed00,
        }
    }
}

/// Writes a FAT image holding `files` in its root directory.
pub fn write(files: &[ImageFile<'_>], options: &VfatOptions) -> Result<Vec<u8>, ImageError> {
    let label = label_bytes(&options.label)?;
    check_files(files, MAX_FAT_FILE)?;
    let mut files = files.to_vec();
    files.sort_by(|a, b| a.name.cmp(b.name));

    let payload: u64 = files
        .iter()
        .map(|f| (f.data.len() as u64).div_ceil(4096) * 4096)
        .sum();
    // Room for the FATs, the root directory and cluster slack; whole 64 KiB units.
    let size = (payload + payload / 16 + 512 * 1024).div_ceil(65_536) * 65_536;
    let size = size.max(1024 * 1024);
    let len = usize::try_from(size).map_err(|_| ImageError::ImageTooLarge(size))?;
    if size > u64::from(u32::MAX) * 512 {
        return Err(ImageError::ImageTooLarge(size));
    }
    let mut disk = Cursor::new(vec![0u8; len]);
    let fat = |e: std::io::Error| ImageError::Fat(e.to_string());
    fatfs::format_volume(
        &mut disk,
        fatfs::FormatVolumeOptions::new()
            .volume_label(label)
            .volume_id(options.volume_id),
    )
    .map_err(fat)?;
    {
        let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new()).map_err(fat)?;
        let root = fs.root_dir();
        for file in &files {
            let mut out = root.create_file(file.name).map_err(fat)?;
            out.write_all(file.data).map_err(fat)?;
            out.flush().map_err(fat)?;
        }
        drop(root);
        fs.unmount().map_err(fat)?;
    }
    Ok(disk.into_inner())
}

fn label_bytes(label: &str) -> Result<[u8; 11], ImageError> {
    let ok = (1..=11).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !ok {
        return Err(ImageError::InvalidLabel {
            label: label.to_owned(),
            allowed: "1 to 11 characters from A-Z 0-9 _ -",
        });
    }
    let mut out = [b' '; 11];
    out[..label.len()].copy_from_slice(label.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn round_trips_through_fatfs() {
        let big = vec![7u8; 3 * 1024 * 1024 + 5];
        let files = [
            ImageFile::new("user-data", b"#cloud-config\n"),
            ImageFile::new("meta-data", b""),
            ImageFile::new("network-config", &big),
        ];
        let image = write(&files, &VfatOptions::default()).unwrap();
        assert_eq!(image, write(&files, &VfatOptions::default()).unwrap());
        let fs = fatfs::FileSystem::new(Cursor::new(image), fatfs::FsOptions::new()).unwrap();
        assert_eq!(fs.volume_label(), "CIDATA");
        for file in &files {
            let mut data = Vec::new();
            fs.root_dir()
                .open_file(file.name)
                .unwrap()
                .read_to_end(&mut data)
                .unwrap();
            assert_eq!(data, file.data, "{}", file.name);
        }
    }

    #[test]
    fn rejects_bad_labels() {
        for label in ["", "cidata", "TWELVE_CHARS"] {
            let options = VfatOptions {
                label: label.into(),
                ..VfatOptions::default()
            };
            assert!(write(&[], &options).is_err(), "{label:?}");
        }
    }
}
