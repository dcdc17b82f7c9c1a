//! ECMA-119 number encodings and the sector size.

/// Logical sector and block size in bytes.
pub const SECTOR: usize = 2048;

/// A 32-bit value in both byte orders (little-endian first), ECMA-119 7.3.3.
pub(crate) fn both_u32(value: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&value.to_le_bytes());
    out[4..].copy_from_slice(&value.to_be_bytes());
    out
}

/// A 16-bit value in both byte orders (little-endian first), ECMA-119 7.2.3.
pub(crate) fn both_u16(value: u16) -> [u8; 4] {
    let mut out = [0u8; 4];
    out[..2].copy_from_slice(&value.to_le_bytes());
    out[2..].copy_from_slice(&value.to_be_bytes());
    out
}
