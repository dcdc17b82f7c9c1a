//! The file set a seed image holds, shared by the ISO 9660 and vfat writers.
//!
//! A NoCloud seed is one flat directory holding a handful of small files, so the writers take a
//! flat list of named byte strings and nothing else: no subdirectories, links or permissions.

use thiserror::Error;

/// Longest file name the writers accept, in characters (the Joliet limit).
pub const MAX_NAME_CHARS: usize = 64;

/// Longest file name the writers accept, in UTF-8 bytes (what fits one Rock Ridge `NM` entry
/// next to the other entries of a directory record).
pub const MAX_NAME_BYTES: usize = 120;

/// Largest file the writers accept, in bytes (the ISO 9660 single-extent limit, rounded down to
/// a whole sector).
pub const MAX_FILE_BYTES: usize = u32::MAX as usize - 2047;

/// One file of an image: its name in the root directory and its exact contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageFile<'a> {
    /// File name as the guest sees it (Rock Ridge, Joliet and FAT long name), e.g. `user-data`.
    pub name: &'a str,
    /// File contents, written byte for byte.
    pub data: &'a [u8],
}

impl<'a> ImageFile<'a> {
    /// A file named `name` holding `data`.
    pub fn new(name: &'a str, data: &'a [u8]) -> Self {
        Self { name, data }
    }
}

/// Why an image could not be written.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ImageError {
    /// A file name is empty, too long, or holds a character the image formats cannot carry.
    #[error(
        "invalid file name {name:?}: {reason} (allowed: 1 to {MAX_NAME_CHARS} characters, \
         at most {MAX_NAME_BYTES} UTF-8 bytes, no control characters, no / \\ : ; * ? \" < > |, \
         not . or ..)"
    )]
    InvalidName {
        /// The offending name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two files have the same name.
    #[error("duplicate file name {0:?}: every file of an image needs its own name")]
    DuplicateName(String),
    /// A file is larger than the format can hold.
    #[error("file {name:?} is {size} bytes; the largest allowed is {max} bytes")]
    FileTooLarge {
        /// The file's name.
        name: String,
        /// Its size in bytes.
        size: usize,
        /// The largest size allowed.
        max: usize,
    },
    /// The whole image would be larger than the format can address.
    #[error("the image would be {0} bytes, more than the format can address")]
    ImageTooLarge(u64),
    /// A volume label is not allowed by the format.
    #[error("invalid volume label {label:?} (allowed: {allowed})")]
    InvalidLabel {
        /// The offending label.
        label: String,
        /// What the format allows.
        allowed: &'static str,
    },
    /// The FAT writer failed.
    #[error("writing the FAT file system failed: {0}")]
    Fat(String),
}

/// Checks every name and size, and that no two names are the same.
pub(crate) fn check_files(files: &[ImageFile<'_>], max_file: usize) -> Result<(), ImageError> {
    let mut seen = std::collections::BTreeSet::new();
    for file in files {
        check_name(file.name)?;
        if !seen.insert(file.name) {
            return Err(ImageError::DuplicateName(file.name.to_owned()));
        }
        if file.data.len() > max_file {
            return Err(ImageError::FileTooLarge {
                name: file.name.to_owned(),
                size: file.data.len(),
                max: max_file,
            });
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), ImageError> {
    let invalid = |reason| {
        Err(ImageError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name == "." || name == ".." {
        return invalid("reserved name");
    }
    if name.chars().count() > MAX_NAME_CHARS || name.len() > MAX_NAME_BYTES {
        return invalid("too long");
    }
    for c in name.chars() {
        if c.is_control() {
            return invalid("control character");
        }
        if matches!(
            c,
            '/' | '\\' | ':' | ';' | '*' | '?' | '"' | '<' | '>' | '|'
        ) {
            return invalid("reserved character");
        }
        if c as u32 > 0xFFFF {
            return invalid("character outside the Basic Multilingual Plane");
        }
    }
    if name.ends_with(' ') || name.ends_with('.') {
        return invalid("ends with a space or a dot");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        let ok = [
            ImageFile::new("user-data", b""),
            ImageFile::new("météo", b"x"),
        ];
        assert_eq!(check_files(&ok, 10), Ok(()));
        for bad in ["", ".", "..", "a/b", "a;1", "tab\there", "trailing.", "😀"] {
            let files = [ImageFile::new(bad, b"")];
            assert!(check_files(&files, 10).is_err(), "{bad:?} accepted");
        }
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        assert!(check_files(&[ImageFile::new(&long, b"")], 10).is_err());
        let dup = [ImageFile::new("a", b""), ImageFile::new("a", b"")];
        assert_eq!(
            check_files(&dup, 10),
            Err(ImageError::DuplicateName("a".into()))
        );
        let big = [ImageFile::new("a", b"12345")];
        assert!(matches!(
            check_files(&big, 4),
            Err(ImageError::FileTooLarge { size: 5, .. })
        ));
    }
}
