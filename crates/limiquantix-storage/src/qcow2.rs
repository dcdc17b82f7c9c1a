//! Native qcow2 header reader (versions 2 and 3).
//!
//! Reads what the backend needs without asking QEMU: the virtual size, the backing file and its
//! format (header extension `0xe2792aca`), and the fields needed to find guest clusters
//! (see the `guest` module). Every offset and length is checked against the buffer and the spec's
//! limits, so a hostile file gives an error, never a panic (there is a fuzz target for it).

use std::io::Read;
use std::path::Path;

/// The qcow2 magic, `QFI\xfb`.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";
/// Header extension type: backing file format name.
pub const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// Header extension type: external data file name.
pub const EXT_DATA_FILE: u32 = 0x4441_5441;

/// Incompatible feature bits (version 3).
pub mod incompatible {
    /// The image was not closed cleanly (refcounts may be stale; data is fine).
    pub const DIRTY: u64 = 1 << 0;
    /// The image is corrupt.
    pub const CORRUPT: u64 = 1 << 1;
    /// Guest data lives in an external data file.
    pub const EXTERNAL_DATA: u64 = 1 << 2;
    /// A compression type other than zlib is set in the header.
    pub const COMPRESSION_TYPE: u64 = 1 << 3;
    /// L2 entries are 128 bits (subclusters).
    pub const EXTENDED_L2: u64 = 1 << 4;
}

/// A parsed qcow2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qcow2Header {
    /// 2 or 3.
    pub version: u32,
    /// Guest-visible size in bytes.
    pub virtual_size: u64,
    /// log2 of the cluster size (9–21).
    pub cluster_bits: u32,
    /// Backing file name as stored (raw bytes; usually a path).
    pub backing_file: Option<Vec<u8>>,
    /// Backing format from the header extension (`qcow2`, `raw`, ...), if recorded.
    pub backing_format: Option<String>,
    /// 0 = none, 1 = AES, 2 = LUKS.
    pub crypt_method: u32,
    /// Number of L1 entries.
    pub l1_size: u32,
    /// File offset of the L1 table.
    pub l1_table_offset: u64,
    /// Incompatible feature bits (0 for version 2).
    pub incompatible_features: u64,
    /// Compression type (0 = zlib, 1 = zstd).
    pub compression_type: u8,
    /// Length of the header proper (72 for version 2).
    pub header_length: u32,
}

/// Why a buffer is not a usable qcow2 header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Qcow2Error {
    /// The first four bytes are not `QFI\xfb`.
    #[error("not a qcow2 image (no QFI\\xfb magic)")]
    BadMagic,
    /// A version other than 2 or 3.
    #[error("qcow2 version {0} is not supported (2 and 3 are)")]
    UnsupportedVersion(u32),
    /// The buffer ends before a structure the header points to.
    #[error("qcow2 header is truncated: {what} needs bytes up to {need}, the image has {have}")]
    Truncated {
        /// The structure.
        what: &'static str,
        /// Bytes needed.
        need: u64,
        /// Bytes available.
        have: u64,
    },
    /// A field is out of range.
    #[error("qcow2 header field {field} is invalid: {problem}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    (u64::from(be32(b, at)) << 32) | u64::from(be32(b, at + 4))
}

fn need(buf: &[u8], what: &'static str, end: u64) -> Result<(), Qcow2Error> {
    if end > buf.len() as u64 {
        Err(Qcow2Error::Truncated {
            what,
            need: end,
            have: buf.len() as u64,
        })
    } else {
        Ok(())
    }
}

fn invalid(field: &'static str, problem: impl Into<String>) -> Qcow2Error {
    Qcow2Error::InvalidField {
        field,
        problem: problem.into(),
    }
}

/// Checks the magic and returns the version (2 or 3).
fn parse_version(buf: &[u8]) -> Result<u32, Qcow2Error> {
    need(buf, "magic", 4)?;
    if buf[..4] != MAGIC {
        return Err(Qcow2Error::BadMagic);
    }
    need(buf, "version", 8)?;
    let version = be32(buf, 4);
    if version != 2 && version != 3 {
        return Err(Qcow2Error::UnsupportedVersion(version));
    }
    Ok(version)
}

/// The version 3 fields: incompatible features, header length and compression type (0 when
/// the header is too short to hold it).
fn parse_v3_fields(buf: &[u8], cluster_size: u64) -> Result<(u64, u32, u8), Qcow2Error> {
    need(buf, "version 3 header", 104)?;
    let incompatible_features = be64(buf, 72);
    let header_length = be32(buf, 100);
    if header_length < 104 || u64::from(header_length) > cluster_size {
        return Err(invalid(
            "header_length",
            format!("{header_length} is outside 104..={cluster_size}"),
        ));
    }
    let mut compression_type = 0;
    if header_length > 104 {
        need(buf, "compression type", 105)?;
        compression_type = buf[104];
    }
    Ok((incompatible_features, header_length, compression_type))
}

/// The backing file name at `offset` (`len` bytes), which must lie in the first cluster.
fn backing_file_name(
    buf: &[u8],
    offset: u64,
    len: u32,
    cluster_size: u64,
) -> Result<Vec<u8>, Qcow2Error> {
    if len == 0 || len > 1023 {
        return Err(invalid(
            "backing_file_size",
            format!("{len} is outside 1..=1023"),
        ));
    }
    let end = offset
        .checked_add(u64::from(len))
        .ok_or_else(|| invalid("backing_file_offset", "overflows"))?;
    if end > cluster_size {
        return Err(invalid(
            "backing_file_offset",
            "the backing file name must lie in the first cluster",
        ));
    }
    need(buf, "backing file name", end)?;
    Ok(buf[offset as usize..end as usize].to_vec())
}

/// Bytes [`Qcow2Header::read`] reads at most: the header, its extensions and the backing file
/// name must sit in the first cluster (at most 2 MiB).
pub const HEADER_READ_LIMIT: usize = 2 << 20;

impl Qcow2Header {
    /// Parses a header from the start of an image (at least the header, its extensions and the
    /// backing file name; reading the first cluster is always enough).
    pub fn parse(buf: &[u8]) -> Result<Self, Qcow2Error> {
        let version = parse_version(buf)?;
        need(buf, "header", 72)?;
        let backing_offset = be64(buf, 8);
        let backing_len = be32(buf, 16);
        let cluster_bits = be32(buf, 20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(invalid(
                "cluster_bits",
                format!("{cluster_bits} is outside 9..=21"),
            ));
        }
        let cluster_size = 1u64 << cluster_bits;
        let virtual_size = be64(buf, 24);
        if virtual_size > (1 << 62) {
            return Err(invalid("size", format!("{virtual_size} bytes is absurd")));
        }
        let crypt_method = be32(buf, 32);
        let l1_size = be32(buf, 36);
        let l1_table_offset = be64(buf, 40);
        if !l1_table_offset.is_multiple_of(512) {
            return Err(invalid(
                "l1_table_offset",
                format!("{l1_table_offset} is not sector-aligned"),
            ));
        }
        let (incompatible_features, header_length, compression_type) = if version == 3 {
            parse_v3_fields(buf, cluster_size)?
        } else {
            (0, 72, 0)
        };
        let mut h = Self {
            version,
            virtual_size,
            cluster_bits,
            backing_file: None,
            backing_format: None,
            crypt_method,
            l1_size,
            l1_table_offset,
            incompatible_features,
            compression_type,
            header_length,
        };
        h.parse_extensions(buf, cluster_size)?;
        if backing_offset != 0 {
            h.backing_file = Some(backing_file_name(
                buf,
                backing_offset,
                backing_len,
                cluster_size,
            )?);
        }
        Ok(h)
    }

    fn parse_extensions(&mut self, buf: &[u8], cluster_size: u64) -> Result<(), Qcow2Error> {
        let mut at = u64::from(self.header_length);
        loop {
            if at + 8 > cluster_size {
                return Err(invalid(
                    "header extensions",
                    "they run past the first cluster",
                ));
            }
            need(buf, "header extension", at + 8)?;
            let kind = be32(buf, at as usize);
            let len = u64::from(be32(buf, at as usize + 4));
            if kind == 0 {
                return Ok(());
            }
            let data = at + 8;
            let end = data + len;
            if end > cluster_size {
                return Err(invalid(
                    "header extensions",
                    "an extension runs past the first cluster",
                ));
            }
            need(buf, "header extension data", end)?;
            if kind == EXT_BACKING_FORMAT {
                let name = &buf[data as usize..end as usize];
                let name = std::str::from_utf8(name)
                    .ok()
                    .filter(|n| {
                        !n.is_empty()
                            && n.len() <= 32
                            && n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                    })
                    .ok_or_else(|| invalid("backing format", "not a format name"))?;
                self.backing_format = Some(name.to_owned());
            }
            at = end.next_multiple_of(8);
        }
    }

    /// Reads the header bytes of the image at `path` (blocking I/O): the first 4 KiB, and for
    /// a qcow2 image the rest of its first cluster (the backing file name may lie anywhere in
    /// it), up to a limit; `Qcow2Header::read` parses them.
    pub fn read_header_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(path)?;
        let mut buf = vec![0u8; 4096];
        let n = read_up_to(&mut f, &mut buf)?;
        buf.truncate(n);
        if n == 4096 && buf[..4] == MAGIC {
            let bits = be32(&buf, 20);
            if (9..=21).contains(&bits) && (1usize << bits) > n {
                let mut rest = vec![0u8; (1usize << bits).min(HEADER_READ_LIMIT) - n];
                let m = read_up_to(&mut f, &mut rest)?;
                buf.extend_from_slice(&rest[..m]);
            }
        }
        Ok(buf)
    }

    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// The backing file name as a path, when it is valid UTF-8.
    pub fn backing_path(&self) -> Option<&Path> {
        self.backing_file
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(Path::new)
    }
}

/// Fills as much of `buf` as the reader has; returns the count.
pub(super) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(m) => n += m,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v3(backing: Option<(&[u8], Option<&str>)>) -> Vec<u8> {
        let mut b = vec![0u8; 65536];
        b[..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&3u32.to_be_bytes());
        b[20..24].copy_from_slice(&16u32.to_be_bytes());
        b[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        b[100..104].copy_from_slice(&112u32.to_be_bytes());
        let mut at = 112;
        if let Some((name, fmt)) = backing {
            if let Some(fmt) = fmt {
                b[at..at + 4].copy_from_slice(&EXT_BACKING_FORMAT.to_be_bytes());
                b[at + 4..at + 8].copy_from_slice(&(fmt.len() as u32).to_be_bytes());
                b[at + 8..at + 8 + fmt.len()].copy_from_slice(fmt.as_bytes());
                at += 8 + fmt.len().next_multiple_of(8);
            }
            at += 8; // end marker
            b[8..16].copy_from_slice(&(at as u64).to_be_bytes());
            b[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
            b[at..at + name.len()].copy_from_slice(name);
        }
        b
    }

    #[test]
    fn parses_backing_and_format() {
        let h = Qcow2Header::parse(&v3(Some((b"/img/base.raw", Some("raw"))))).unwrap();
        assert_eq!(h.version, 3);
        assert_eq!(h.virtual_size, 1 << 30);
        assert_eq!(h.backing_path(), Some(Path::new("/img/base.raw")));
        assert_eq!(h.backing_format.as_deref(), Some("raw"));
        let h = Qcow2Header::parse(&v3(Some((b"base", None)))).unwrap();
        assert_eq!(h.backing_format, None);
        let h = Qcow2Header::parse(&v3(None)).unwrap();
        assert_eq!(h.backing_file, None);
    }

    #[test]
    fn refuses_bad_input_without_panicking() {
        assert_eq!(
            Qcow2Header::parse(b"QFI"),
            Err(Qcow2Error::Truncated {
                what: "magic",
                need: 4,
                have: 3
            })
        );
        assert_eq!(Qcow2Header::parse(b"KDMV...."), Err(Qcow2Error::BadMagic));
        let mut b = v3(None);
        b[4..8].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(
            Qcow2Header::parse(&b),
            Err(Qcow2Error::UnsupportedVersion(1))
        );
        let mut b = v3(Some((b"x", Some("qcow2"))));
        b[16..20].copy_from_slice(&5000u32.to_be_bytes());
        assert!(Qcow2Header::parse(&b).is_err());
        let mut b = v3(None);
        b[20..24].copy_from_slice(&40u32.to_be_bytes());
        assert!(Qcow2Header::parse(&b).is_err());
        let b = v3(Some((b"/img/base", Some("qcow2"))));
        for cut in [0, 50, 103, 112, 120, 130] {
            assert!(Qcow2Header::parse(&b[..cut]).is_err(), "{cut}");
        }
        // An extension whose length runs off the cluster.
        let mut b = v3(None);
        b[112..116].copy_from_slice(&7u32.to_be_bytes());
        b[116..120].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Qcow2Header::parse(&b).is_err());
    }
}
