//! System Use Sharing Protocol (SUSP 1.10) and Rock Ridge (RRIP 1.09) entries.
//!
//! Rock Ridge gives Linux the real file names (`user-data`, not `USER_DAT.;1`) and POSIX modes.
//! The root directory's `.` record starts with `SP` and points, through a `CE` entry, at a
//! continuation area holding the `ER` entry that names the extension: `ER` (237 bytes) does not
//! fit in a directory record next to the others.

use super::bytes::both_u32;

/// `RR` flags (RRIP 1.09 4.1.7): which Rock Ridge entries this record carries.
pub(crate) const RR_PX: u8 = 0x01;
/// `RR` flag: the record carries an `NM` entry.
pub(crate) const RR_NM: u8 = 0x08;
/// `RR` flag: the record carries a `TF` entry.
pub(crate) const RR_TF: u8 = 0x80;

/// File mode of every regular file: read-only for everyone.
pub(crate) const MODE_FILE: u32 = 0o100_444;
/// File mode of the root directory.
pub(crate) const MODE_DIR: u32 = 0o040_555;

const ER_ID: &[u8] = b"RRIP_1991A";
const ER_DESCRIPTOR: &[u8] =
    b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
const ER_SOURCE: &[u8] = b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  \
SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";

/// Starts an entry: signature, total length, version 1.
fn header(out: &mut Vec<u8>, sig: &[u8; 2], len: usize) {
    out.extend_from_slice(sig);
    out.push(u8::try_from(len).expect("SUSP entries are shorter than 256 bytes"));
    out.push(1);
}

/// `SP`: SUSP is in use, no bytes skipped (must be the first entry of the root's `.` record).
pub(crate) fn sp(out: &mut Vec<u8>) {
    header(out, b"SP", 7);
    out.extend_from_slice(&[0xBE, 0xEF, 0]);
}

/// `RR`: the Rock Ridge entries present in this record (RRIP 1.09 readers look for it).
pub(crate) fn rr(out: &mut Vec<u8>, flags: u8) {
    header(out, b"RR", 5);
    out.push(flags);
}

/// `PX`: POSIX mode, link count, uid 0 and gid 0.
pub(crate) fn px(out: &mut Vec<u8>, mode: u32, links: u32) {
    header(out, b"PX", 36);
    for value in [mode, links, 0, 0] {
        out.extend_from_slice(&both_u32(value));
    }
}

/// `TF`: modification, access and attribute-change times, all `time`.
pub(crate) fn tf(out: &mut Vec<u8>, time: [u8; 7]) {
    header(out, b"TF", 5 + 3 * 7);
    out.push(0x0E);
    for _ in 0..3 {
        out.extend_from_slice(&time);
    }
}

/// `NM`: the file's real name, in one piece.
pub(crate) fn nm(out: &mut Vec<u8>, name: &str) {
    header(out, b"NM", 5 + name.len());
    out.push(0);
    out.extend_from_slice(name.as_bytes());
}

/// `CE`: the System Use area continues at `block`, byte 0, for `len` bytes.
pub(crate) fn ce(out: &mut Vec<u8>, block: u32, len: u32) {
    header(out, b"CE", 28);
    for value in [block, 0, len] {
        out.extend_from_slice(&both_u32(value));
    }
}

/// `ER`: the extension in use is Rock Ridge (RRIP 1.09), version 1.
pub(crate) fn er() -> Vec<u8> {
    let len = 8 + ER_ID.len() + ER_DESCRIPTOR.len() + ER_SOURCE.len();
    let mut out = Vec::with_capacity(len);
    header(&mut out, b"ER", len);
    for part in [ER_ID, ER_DESCRIPTOR, ER_SOURCE] {
        out.push(u8::try_from(part.len()).expect("ER fields are short"));
    }
    out.push(1);
    for part in [ER_ID, ER_DESCRIPTOR, ER_SOURCE] {
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_lengths_match_their_length_byte() {
        let mut out = Vec::new();
        sp(&mut out);
        rr(&mut out, RR_PX | RR_NM | RR_TF);
        px(&mut out, MODE_FILE, 1);
        tf(&mut out, [0; 7]);
        nm(&mut out, "user-data");
        ce(&mut out, 23, 237);
        out.extend(er());
        let mut at = 0;
        let mut sigs = Vec::new();
        while at < out.len() {
            sigs.push(String::from_utf8_lossy(&out[at..at + 2]).into_owned());
            at += usize::from(out[at + 2]);
        }
        assert_eq!(at, out.len());
        assert_eq!(sigs, ["SP", "RR", "PX", "TF", "NM", "CE", "ER"]);
        assert_eq!(er().len(), 237, "the ER entry needs a CE continuation");
    }
}
