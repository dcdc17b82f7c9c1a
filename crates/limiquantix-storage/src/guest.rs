//! Reading guest bytes from the start of an image (raw, or qcow2 through its L1/L2 tables).
//!
//! Only what boot inspection needs: a few KiB at the start of the disk. qcow2 support covers
//! standard and zlib-compressed clusters, zero clusters and backing chains (up to 8 deep);
//! images with encryption, an external data file, extended L2 entries or zstd compression are
//! reported as unsupported rather than guessed at.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::StorageError;
use crate::format::{DetectedFormat, detect_format};
use crate::qcow2::{Qcow2Header, incompatible};

const MAX_CHAIN: usize = 8;
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const COMPRESSED: u64 = 1 << 62;
const ZERO: u64 = 1;

/// Reads `len` guest bytes at guest offset 0 of the image at `path` (blocking I/O).
/// Bytes past the virtual size read as zeros.
pub fn read_guest_start(path: &Path, len: usize) -> Result<Vec<u8>, StorageError> {
    read_chain(path, len, 0, None)
}

/// `format` is the backing format recorded by the child image, when there is one: a backing
/// recorded as raw is read as raw whatever its bytes look like.
fn read_chain(
    path: &Path,
    len: usize,
    depth: usize,
    format: Option<&str>,
) -> Result<Vec<u8>, StorageError> {
    let io = |source| StorageError::Io {
        path: path.to_owned(),
        source,
    };
    let unsupported = |problem: &str| StorageError::Unreadable {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    let mut out = vec![0u8; len];
    let detected = if format == Some("raw") {
        DetectedFormat::Raw { size: 0 }
    } else {
        detect_format(path)?
    };
    match detected {
        DetectedFormat::Raw { .. } => {
            let mut f = File::open(path).map_err(io)?;
            crate::qcow2::read_up_to(&mut f, &mut out).map_err(io)?;
        }
        DetectedFormat::Qcow2(h) => {
            if h.crypt_method != 0 {
                return Err(unsupported("the image is encrypted"));
            }
            let bad = incompatible::EXTERNAL_DATA | incompatible::EXTENDED_L2;
            if h.incompatible_features & bad != 0 {
                return Err(unsupported(
                    "the image uses an external data file or extended L2 entries",
                ));
            }
            let f = File::open(path).map_err(io)?;
            let backing = backing_of(path, &h);
            let cs = h.cluster_size() as usize;
            let mut at = 0usize;
            while at < len && (at as u64) < h.virtual_size {
                let n = (cs - at % cs).min(len - at);
                match cluster(&f, &h, at as u64).map_err(|e| match e {
                    ClusterError::Io(e) => io(e),
                    ClusterError::Bad(p) => unsupported(p),
                })? {
                    Cluster::Data(c) => {
                        out[at..at + n].copy_from_slice(&c[at % cs..at % cs + n]);
                    }
                    Cluster::Zero => {}
                    Cluster::Unallocated => {
                        if let Some(b) = &backing {
                            if depth >= MAX_CHAIN {
                                return Err(unsupported("the backing chain is too deep"));
                            }
                            let data =
                                read_chain(b, at + n, depth + 1, h.backing_format.as_deref())?;
                            out[at..at + n].copy_from_slice(&data[at..at + n]);
                        }
                    }
                }
                at += n;
            }
        }
    }
    Ok(out)
}

/// The backing file as a path: absolute, or relative to the image's directory.
fn backing_of(path: &Path, h: &Qcow2Header) -> Option<PathBuf> {
    let b = h.backing_path()?;
    Some(if b.is_absolute() {
        b.to_owned()
    } else {
        path.parent().unwrap_or(Path::new("/")).join(b)
    })
}

enum Cluster {
    Data(Vec<u8>),
    Zero,
    Unallocated,
}

enum ClusterError {
    Io(std::io::Error),
    Bad(&'static str),
}

impl From<std::io::Error> for ClusterError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

fn read_u64(f: &File, at: u64) -> Result<u64, ClusterError> {
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, at)?;
    Ok(u64::from_be_bytes(b))
}

/// The cluster holding guest offset `off`.
fn cluster(f: &File, h: &Qcow2Header, off: u64) -> Result<Cluster, ClusterError> {
    let bits = h.cluster_bits;
    let l2_bits = bits - 3;
    let l1_index = off >> (bits + l2_bits);
    if l1_index >= u64::from(h.l1_size) {
        return Ok(Cluster::Unallocated);
    }
    let l1_at = h
        .l1_table_offset
        .checked_add(8 * l1_index)
        .ok_or(ClusterError::Bad("the L1 table offset is out of range"))?;
    let l1 = read_u64(f, l1_at)? & OFFSET_MASK;
    if l1 == 0 {
        return Ok(Cluster::Unallocated);
    }
    let l2_index = (off >> bits) & ((1 << l2_bits) - 1);
    let l2 = read_u64(f, l1 + 8 * l2_index)?;
    let cs = 1usize << bits;
    if l2 & COMPRESSED != 0 {
        if h.compression_type != 0 {
            return Err(ClusterError::Bad("the image uses zstd compression"));
        }
        let x = 62 - (bits - 8);
        let host = l2 & ((1 << x) - 1);
        let sectors = ((l2 >> x) & ((1 << (62 - x)) - 1)) + 1;
        let clen = (sectors * 512 - (host & 511)) as usize;
        let mut comp = vec![0u8; clen];
        let n = f.read_at(&mut comp, host)?;
        comp.truncate(n);
        let mut data = Vec::with_capacity(cs);
        flate2::read::DeflateDecoder::new(&comp[..])
            .take(cs as u64)
            .read_to_end(&mut data)
            .map_err(|_| ClusterError::Bad("a compressed cluster does not inflate"))?;
        data.resize(cs, 0);
        return Ok(Cluster::Data(data));
    }
    if h.version >= 3 && l2 & ZERO != 0 {
        return Ok(Cluster::Zero);
    }
    let host = l2 & OFFSET_MASK;
    if host == 0 {
        return Ok(Cluster::Unallocated);
    }
    let mut data = vec![0u8; cs];
    let n = f.read_at(&mut data, host)?;
    data[n..].fill(0);
    Ok(Cluster::Data(data))
}
