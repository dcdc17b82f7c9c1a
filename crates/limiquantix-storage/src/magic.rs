//! The one table of image magic numbers: what a file is, from its first bytes.
//!
//! Everything that looks at an image's header asks [`detect`]: the disk checks of this crate
//! (`detect_format`: qcow2 and raw are used, the rest refused) and the image library
//! (which also accepts ISO media and maps each refused kind to the command that converts or
//! unpacks it). QEMU is never asked to guess a format.

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
    /// Compressed loopback (cloop).
    Cloop,
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
            Foreign::Cloop => "cloop",
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
            Foreign::Cloop => "cloop",
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
    if at(0, &crate::qcow2::MAGIC) {
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
    } else if at(0, b"#!/bin/sh\n#V2.0 Format") {
        Some(Foreign::Cloop)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_magic_is_recognised() {
        let mut vdi = vec![0u8; 512];
        vdi[0x40..0x44].copy_from_slice(&0xbeda_107f_u32.to_le_bytes());
        let cases: Vec<(Vec<u8>, ImageFormat)> = vec![
            (b"QFI\xfb".to_vec(), ImageFormat::Qcow2),
            (b"KDMV".to_vec(), ImageFormat::Foreign(Foreign::Vmdk)),
            (
                b"# Disk DescriptorFile".to_vec(),
                ImageFormat::Foreign(Foreign::Vmdk),
            ),
            (vdi, ImageFormat::Foreign(Foreign::Vdi)),
            (b"conectix".to_vec(), ImageFormat::Foreign(Foreign::Vpc)),
            (
                b"#!/bin/sh\n#V2.0 Format".to_vec(),
                ImageFormat::Foreign(Foreign::Cloop),
            ),
            (b"BZh9".to_vec(), ImageFormat::Packed(Packed::Bzip2)),
            (b"BZhx".to_vec(), ImageFormat::Raw),
            (b"PK\x03\x04".to_vec(), ImageFormat::Packed(Packed::Zip)),
        ];
        for (header, want) in cases {
            assert_eq!(detect(&header), want, "{header:?}");
        }
    }
}
