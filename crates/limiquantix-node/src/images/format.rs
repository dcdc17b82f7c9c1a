//! Image format detection from the first bytes of a file.
//!
//! The library accepts what QEMU can boot from without conversion: qcow2, raw disks and ISO 9660
//! media. Everything else is recognised by its magic where possible and refused with the
//! `qemu-img convert` (or decompression) command that makes it acceptable.

use super::ImageError;

/// Bytes of the header that [`detect`] looks at: enough to reach the ISO 9660 primary volume
/// descriptor's `CD001` at offset 0x8001.
pub const HEADER_LEN: usize = 0x8800;

const ISO_MAGIC_OFFSET: usize = 0x8001;

/// The format of an image, as far as its header tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// QEMU copy-on-write v2/v3 (magic `QFI\xfb`).
    Qcow2,
    /// A raw disk image (no known magic).
    Raw,
    /// ISO 9660 media (`CD001` at 0x8001).
    Iso,
    /// A format QEMU reads but the library does not accept; convert it first.
    Foreign(Foreign),
    /// A compressed file or an archive holding the image; unpack it first.
    Packed(Packed),
}

/// Disk formats recognised but refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Foreign {
    /// VMware VMDK.
    Vmdk,
    /// VirtualBox VDI.
    Vdi,
    /// Hyper-V VHDX.
    Vhdx,
    /// Virtual PC / Hyper-V VHD (dynamic).
    Vpc,
    /// QEMU enhanced disk.
    Qed,
    /// Parallels.
    Parallels,
    /// Bochs.
    Bochs,
    /// LUKS-encrypted volume.
    Luks,
}

/// Compression and archive formats recognised but refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packed {
    /// xz.
    Xz,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
    /// bzip2.
    Bzip2,
    /// zip archive.
    Zip,
    /// tar archive (also OVA).
    Tar,
}

impl Foreign {
    /// Human name of the format.
    pub fn name(self) -> &'static str {
        match self {
            Foreign::Vmdk => "VMDK",
            Foreign::Vdi => "VDI",
            Foreign::Vhdx => "VHDX",
            Foreign::Vpc => "VHD",
            Foreign::Qed => "QED",
            Foreign::Parallels => "Parallels",
            Foreign::Bochs => "Bochs",
            Foreign::Luks => "LUKS",
        }
    }

    /// The name `qemu-img` uses for the format (`-f`).
    pub fn qemu_name(self) -> &'static str {
        match self {
            Foreign::Vmdk => "vmdk",
            Foreign::Vdi => "vdi",
            Foreign::Vhdx => "vhdx",
            Foreign::Vpc => "vpc",
            Foreign::Qed => "qed",
            Foreign::Parallels => "parallels",
            Foreign::Bochs => "bochs",
            Foreign::Luks => "luks",
        }
    }
}

impl Packed {
    /// Human name of the format.
    pub fn name(self) -> &'static str {
        match self {
            Packed::Xz => "xz-compressed",
            Packed::Gzip => "gzip-compressed",
            Packed::Zstd => "zstd-compressed",
            Packed::Bzip2 => "bzip2-compressed",
            Packed::Zip => "a zip archive",
            Packed::Tar => "a tar archive",
        }
    }

    fn unpack_hint(self) -> &'static str {
        match self {
            Packed::Xz => "decompress it first (xz -d FILE) and import the result",
            Packed::Gzip => "decompress it first (gzip -d FILE) and import the result",
            Packed::Zstd => "decompress it first (zstd -d FILE) and import the result",
            Packed::Bzip2 => "decompress it first (bzip2 -d FILE) and import the result",
            Packed::Zip => "extract the disk image (unzip FILE) and import it",
            Packed::Tar => "extract the disk image (tar -xf FILE) and import it",
        }
    }
}

impl ImageFormat {
    /// Short lowercase name as shown in listings (`qcow2`, `raw`, `iso`, `vmdk`, `xz`...).
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Qcow2 => "qcow2",
            ImageFormat::Raw => "raw",
            ImageFormat::Iso => "iso",
            ImageFormat::Foreign(f) => f.qemu_name(),
            ImageFormat::Packed(p) => match p {
                Packed::Xz => "xz",
                Packed::Gzip => "gzip",
                Packed::Zstd => "zstd",
                Packed::Bzip2 => "bzip2",
                Packed::Zip => "zip",
                Packed::Tar => "tar",
            },
        }
    }

    /// Whether the library accepts images of this format.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            ImageFormat::Qcow2 | ImageFormat::Raw | ImageFormat::Iso
        )
    }
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Detects the format from the first bytes of an image (up to [`HEADER_LEN`]; a shorter slice
/// is the whole file). Anything without a known magic is raw.
pub fn detect(header: &[u8]) -> ImageFormat {
    let at = |offset: usize, magic: &[u8]| header.get(offset..offset + magic.len()) == Some(magic);
    if at(0, b"QFI\xfb") {
        return ImageFormat::Qcow2;
    }
    if at(ISO_MAGIC_OFFSET, b"CD001") {
        return ImageFormat::Iso;
    }
    let foreign = if at(0, b"KDMV") || at(0, b"COWD") || at(0, b"# Disk DescriptorFile") {
        Some(Foreign::Vmdk)
    } else if at(0x40, &0xbeda_107f_u32.to_le_bytes()) {
        Some(Foreign::Vdi)
    } else if at(0, b"vhdxfile") {
        Some(Foreign::Vhdx)
    } else if at(0, b"conectix") {
        Some(Foreign::Vpc)
    } else if at(0, b"QED\0") {
        Some(Foreign::Qed)
    } else if at(0, b"WithoutFreeSpace") || at(0, b"WithouFreSpacExt") {
        Some(Foreign::Parallels)
    } else if at(0, b"Bochs Virtual HD Image") {
        Some(Foreign::Bochs)
    } else if at(0, b"LUKS\xba\xbe") {
        Some(Foreign::Luks)
    } else {
        None
    };
    if let Some(f) = foreign {
        return ImageFormat::Foreign(f);
    }
    let packed = if at(0, b"\xfd7zXZ\0") {
        Some(Packed::Xz)
    } else if at(0, b"\x1f\x8b") {
        Some(Packed::Gzip)
    } else if at(0, b"\x28\xb5\x2f\xfd") {
        Some(Packed::Zstd)
    } else if at(0, b"BZh") && header.get(3).is_some_and(|b| (b'1'..=b'9').contains(b)) {
        Some(Packed::Bzip2)
    } else if at(0, b"PK\x03\x04") {
        Some(Packed::Zip)
    } else if at(257, b"ustar") {
        Some(Packed::Tar)
    } else {
        None
    };
    match packed {
        Some(p) => ImageFormat::Packed(p),
        None => ImageFormat::Raw,
    }
}

/// Checks that an image with this header may enter the library: a supported format, and for
/// qcow2 no backing file (it would point outside the library) and no encryption.
pub fn check_importable(header: &[u8], name: &str) -> Result<ImageFormat, ImageError> {
    let format = detect(header);
    let refuse = |what: String, hint: String| Err(ImageError::UnsupportedFormat { what, hint });
    match format {
        ImageFormat::Foreign(f) => refuse(
            format!(
                "the image is in {} format, which the library does not accept",
                f.name()
            ),
            format!(
                "convert it to qcow2 first: qemu-img convert -f {} -O qcow2 FILE {}.qcow2",
                f.qemu_name(),
                super::name::stem(name)
            ),
        ),
        ImageFormat::Packed(p) => refuse(
            format!("the file is {}, not a disk image", p.name()),
            p.unpack_hint().to_owned(),
        ),
        ImageFormat::Qcow2 => {
            let be64 = |o: usize| {
                header
                    .get(o..o + 8)
                    .map(|b| u64::from_be_bytes(b.try_into().unwrap()))
            };
            let be32 = |o: usize| {
                header
                    .get(o..o + 4)
                    .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
            };
            match (be32(4), be64(8), be32(32)) {
                (Some(2 | 3), Some(0), Some(0)) => Ok(format),
                (Some(2 | 3), Some(_), Some(0)) => refuse(
                    "the qcow2 image has a backing file".to_owned(),
                    format!(
                        "flatten it first: qemu-img convert -O qcow2 FILE {}.qcow2",
                        super::name::stem(name)
                    ),
                ),
                (Some(2 | 3), Some(_), Some(_)) => refuse(
                    "the qcow2 image is encrypted".to_owned(),
                    format!(
                        "decrypt it first: qemu-img convert --object secret,id=sec0,file=KEYFILE --image-opts encrypt.key-secret=sec0,file.filename=FILE -O qcow2 {}.qcow2",
                        super::name::stem(name)
                    ),
                ),
                _ => refuse(
                    "the qcow2 header is truncated or of an unknown version".to_owned(),
                    "check the file with qemu-img info FILE".to_owned(),
                ),
            }
        }
        ImageFormat::Raw | ImageFormat::Iso => Ok(format),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qcow2(version: u32, backing_offset: u64, crypt: u32) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&version.to_be_bytes());
        h[8..16].copy_from_slice(&backing_offset.to_be_bytes());
        h[32..36].copy_from_slice(&crypt.to_be_bytes());
        h
    }

    #[test]
    fn detects_supported_formats() {
        assert_eq!(detect(&qcow2(3, 0, 0)), ImageFormat::Qcow2);
        let mut iso = vec![0u8; HEADER_LEN];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(detect(&iso), ImageFormat::Iso);
        assert_eq!(detect(&[0u8; 4096]), ImageFormat::Raw);
        assert_eq!(detect(b""), ImageFormat::Raw);
        assert!(check_importable(&qcow2(2, 0, 0), "x").is_ok());
        assert!(check_importable(&iso, "x").is_ok());
    }

    #[test]
    fn refuses_foreign_formats_with_a_conversion_hint() {
        let mut vdi = vec![0u8; 512];
        vdi[0x40..0x44].copy_from_slice(&0xbeda_107f_u32.to_le_bytes());
        for (header, fmt) in [
            (b"KDMV\x01\0\0\0".to_vec(), "vmdk"),
            (vdi, "vdi"),
            (b"vhdxfile".to_vec(), "vhdx"),
            (b"conectix".to_vec(), "vpc"),
        ] {
            let err = check_importable(&header, "win.img")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!(
                    "qemu-img convert -f {fmt} -O qcow2 FILE win.qcow2"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn refuses_compressed_files_and_risky_qcow2() {
        let err = check_importable(b"\xfd7zXZ\0rest", "a.img.xz")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("xz-compressed") && err.contains("xz -d"),
            "{err}"
        );
        let err = check_importable(&qcow2(3, 0x200, 0), "a")
            .unwrap_err()
            .to_string();
        assert!(err.contains("backing file"), "{err}");
        let err = check_importable(&qcow2(3, 0, 1), "a")
            .unwrap_err()
            .to_string();
        assert!(err.contains("encrypted"), "{err}");
        let err = check_importable(&qcow2(9, 0, 0), "a")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown version"), "{err}");
    }
}
