//! Image names: validation and derivation from a source path or URL.

use super::error::ImageError;

/// Longest accepted image name.
pub const MAX_NAME_LEN: usize = 128;

/// File extensions that may be left out when an image is named (`noble` finds `noble.img`).
pub const KNOWN_EXTENSIONS: &[&str] = &["qcow2", "qcow", "img", "raw", "iso"];

/// Checks an image name: 1–128 characters of `[A-Za-z0-9._-]`, not starting with a dot, so no
/// `/`, no `..`, no hidden files.
pub fn validate_name(name: &str) -> Result<(), ImageError> {
    let invalid = |reason| {
        Err(ImageError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return invalid("it is longer than 128 characters");
    }
    if name.starts_with('.') {
        return invalid("it starts with '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("it contains a character other than A-Z, a-z, 0-9, '.', '_' or '-'");
    }
    Ok(())
}

/// The name without a known extension (`noble.img` → `noble`), or the name itself.
pub fn stem(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((base, ext)) if !base.is_empty() && KNOWN_EXTENSIONS.contains(&ext) => base,
        _ => name,
    }
}

/// Derives an image name from the last segment of a path or URL (query and fragment removed).
pub fn derive_name(source: &str) -> Result<String, ImageError> {
    let no_query = source.split(['?', '#']).next().unwrap_or_default();
    // For a URL, only the path after the host can name the image.
    let path = match no_query.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, path)| path),
        None => no_query,
    };
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    match validate_name(last) {
        Ok(()) if !last.is_empty() => Ok(last.to_owned()),
        _ => Err(ImageError::NoName {
            source_desc: source.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in [
            "noble",
            "noble-server-cloudimg-amd64.img",
            "a",
            "deb_12.qcow2",
            &"x".repeat(128),
        ] {
            validate_name(n).unwrap();
        }
    }

    #[test]
    fn refuses_bad_names() {
        for n in [
            "",
            "..",
            ".hidden",
            "a/b",
            "../etc",
            "a b",
            "é",
            "a\nb",
            &"x".repeat(129),
        ] {
            let err = validate_name(n).unwrap_err().to_string();
            assert!(err.contains("invalid image name"), "{n:?}: {err}");
        }
    }

    #[test]
    fn stems_strip_known_extensions_only() {
        assert_eq!(stem("noble.img"), "noble");
        assert_eq!(stem("noble.qcow2"), "noble");
        assert_eq!(stem("debian-12.tar"), "debian-12.tar");
        assert_eq!(stem(".img"), ".img");
        assert_eq!(stem("noble"), "noble");
    }

    #[test]
    fn derives_names_from_paths_and_urls() {
        assert_eq!(derive_name("./dir/noble.img").unwrap(), "noble.img");
        assert_eq!(
            derive_name("https://example.com/x/noble.img?sig=1#f").unwrap(),
            "noble.img"
        );
        assert!(derive_name("https://example.com/").is_err());
        assert!(derive_name("https://example.com/a%20b").is_err());
    }
}
