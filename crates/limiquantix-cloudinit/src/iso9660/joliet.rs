//! Joliet (UCS-2 names) for readers that ignore Rock Ridge, such as Windows and cloudbase-init.

/// The escape sequence marking a supplementary descriptor as Joliet UCS-2 level 3.
pub(crate) const ESCAPE_LEVEL3: [u8; 3] = *b"%/E";

/// Encodes `text` as big-endian UCS-2 (names are checked to lie in the Basic Multilingual Plane).
pub(crate) fn ucs2(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// A descriptor text field of `len` bytes: UCS-2 text padded with UCS-2 spaces.
pub(crate) fn ucs2_field(text: &str, len: usize) -> Vec<u8> {
    let mut out = ucs2(text);
    out.truncate(len & !1);
    while out.len() + 1 < len {
        out.extend_from_slice(&[0, b' ']);
    }
    out.resize(len, 0);
    out
}

/// The Joliet file identifier: the name in UCS-2, without a version suffix (as `genisoimage`
/// writes it).
pub(crate) fn identifier(name: &str) -> Vec<u8> {
    ucs2(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_big_endian_and_pads_with_spaces() {
        assert_eq!(ucs2("cé"), [0, b'c', 0, 0xE9]);
        assert_eq!(ucs2_field("ab", 6), [0, b'a', 0, b'b', 0, b' ']);
        assert_eq!(ucs2_field("ab", 5), [0, b'a', 0, b'b', 0]);
        assert_eq!(identifier("a"), [0, b'a']);
    }
}
