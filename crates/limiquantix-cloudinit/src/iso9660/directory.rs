//! Directory records, their packing into sectors, and ISO 9660 level-1 (8.3) names.

use super::bytes::{SECTOR, both_u16, both_u32};

/// File flag: the record describes a directory.
const FLAG_DIRECTORY: u8 = 0x02;

/// One directory record (ECMA-119 9.1) before encoding.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// First sector of the file's data.
    pub extent: u32,
    /// Data length in bytes.
    pub size: u32,
    /// Recording time, 7-byte form.
    pub time: [u8; 7],
    /// Whether this record describes a directory.
    pub directory: bool,
    /// File identifier bytes (`\0` for `.`, `\x01` for `..`).
    pub identifier: Vec<u8>,
    /// System Use area (SUSP / Rock Ridge entries).
    pub system_use: Vec<u8>,
}

impl Record {
    /// Encoded length: 33 fixed bytes, the identifier, a pad byte when the identifier length is
    /// even, and the System Use area padded to an even length.
    pub fn len(&self) -> usize {
        let head =
            33 + self.identifier.len() + usize::from(self.identifier.len().is_multiple_of(2));
        head + self.system_use.len() + self.system_use.len() % 2
    }

    /// Appends the encoded record to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let len = self.len();
        out.push(u8::try_from(len).expect("directory records are shorter than 256 bytes"));
        out.push(0); // extended attribute record length
        out.extend_from_slice(&both_u32(self.extent));
        out.extend_from_slice(&both_u32(self.size));
        out.extend_from_slice(&self.time);
        out.push(if self.directory { FLAG_DIRECTORY } else { 0 });
        out.push(0); // file unit size
        out.push(0); // interleave gap
        out.extend_from_slice(&both_u16(1)); // volume sequence number
        out.push(u8::try_from(self.identifier.len()).expect("identifiers are short"));
        out.extend_from_slice(&self.identifier);
        if self.identifier.len().is_multiple_of(2) {
            out.push(0);
        }
        out.extend_from_slice(&self.system_use);
        out.resize(start + len, 0);
    }
}

/// Packs records into whole sectors: a record never crosses a sector boundary.
pub(crate) fn pack(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SECTOR);
    for record in records {
        let used = out.len() % SECTOR;
        if used + record.len() > SECTOR {
            out.resize(out.len() + SECTOR - used, 0);
        }
        record.encode(&mut out);
    }
    out.resize(out.len().div_ceil(SECTOR) * SECTOR, 0);
    out
}

/// Size in bytes that [`pack`] gives for records of these lengths.
pub(crate) fn packed_size(records: &[Record]) -> usize {
    let mut size = 0;
    for record in records {
        let used = size % SECTOR;
        if used + record.len() > SECTOR {
            size += SECTOR - used;
        }
        size += record.len();
    }
    size.div_ceil(SECTOR) * SECTOR
}

/// Maps each name to a unique level-1 identifier `NAME.EXT;1` (d-characters, 8.3).
///
/// Characters outside `A-Z 0-9 _` become `_`, letters are upper-cased; a clash gets a numeric
/// tail (`USER_DA1`). Readers with Rock Ridge or Joliet never show these names.
pub(crate) fn level1_names(names: &[&str]) -> Vec<String> {
    let mut used = std::collections::BTreeSet::new();
    names
        .iter()
        .map(|name| {
            let (base, ext) = match name.rfind('.') {
                Some(dot) if dot > 0 => (&name[..dot], &name[dot + 1..]),
                _ => (*name, ""),
            };
            let base = d_chars(base, 8);
            let base = if base.is_empty() {
                "_".to_owned()
            } else {
                base
            };
            let ext = d_chars(ext, 3);
            let mut candidate = format!("{base}.{ext};1");
            let mut n = 1u32;
            while !used.insert(candidate.clone()) {
                let tail = n.to_string();
                let keep = base.len().min(8 - tail.len());
                candidate = format!("{}{tail}.{ext};1", &base[..keep]);
                n += 1;
            }
            candidate
        })
        .collect()
}

fn d_chars(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Sort key of a level-1 identifier (ECMA-119 9.3): name, then extension, each space-padded.
pub(crate) fn level1_sort_key(identifier: &str) -> (String, String) {
    let stem = identifier.trim_end_matches(";1");
    let (name, ext) = stem.split_once('.').unwrap_or((stem, ""));
    (format!("{name:<8}"), format!("{ext:<3}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level1_names_are_unique_8_3() {
        let names = level1_names(&["user-data", "user_data", "meta-data", ".hidden", "a.tar.gz"]);
        assert_eq!(
            names,
            [
                "USER_DAT.;1",
                "USER_DA1.;1",
                "META_DAT.;1",
                "_HIDDEN.;1",
                "A_TAR.GZ;1"
            ]
        );
    }

    #[test]
    fn records_never_cross_sectors() {
        let record = Record {
            extent: 0,
            size: 0,
            time: [0; 7],
            directory: false,
            identifier: vec![b'A'; 11],
            system_use: vec![0; 200],
        };
        assert_eq!(record.len(), 244);
        let records = vec![record; 9];
        let packed = pack(&records);
        assert_eq!(packed.len(), 2 * SECTOR);
        assert_eq!(packed_size(&records), packed.len());
        // 8 records fill the first sector, the ninth starts the second.
        assert_eq!(packed[SECTOR], 244);
    }
}
