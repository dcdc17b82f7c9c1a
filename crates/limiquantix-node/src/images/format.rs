//! Which images the library accepts, and what to do with the others.
//!
//! The library accepts what QEMU can boot from without conversion: qcow2, raw disks and ISO 9660
//! media. The format comes from the storage crate's one magic table
//! ([`limiquantix_storage::magic`]); here each refused kind is mapped to the `qemu-img convert`
//! (or decompression) command that makes it acceptable.

use super::error::ImageError;
pub use limiquantix_storage::magic::{Foreign, HEADER_LEN, ImageFormat, Packed, detect};

/// How to unpack a compressed or archived image.
fn unpack_hint(p: Packed) -> &'static str {
    match p {
        Packed::Xz => "decompress it first (xz -d FILE) and import the result",
        Packed::Gzip => "decompress it first (gzip -d FILE) and import the result",
        Packed::Zstd => "decompress it first (zstd -d FILE) and import the result",
        Packed::Bzip2 => "decompress it first (bzip2 -d FILE) and import the result",
        Packed::Zip => "extract the disk image (unzip FILE) and import it",
        Packed::Tar => "extract the disk image (tar -xf FILE) and import it",
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
            unpack_hint(p).to_owned(),
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
