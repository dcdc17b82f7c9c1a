//! What kind of user-data a file is, detected the way cloud-init does: by its first line,
//! MIME headers, or gzip magic.

use std::io::Read;

use crate::error::ValidationError;

/// The kinds of user-data cloud-init understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserDataKind {
    /// Empty: cloud-init does nothing with it.
    Empty,
    /// `#cloud-config`: a YAML mapping.
    CloudConfig,
    /// `#cloud-config-archive`: a YAML list of parts.
    CloudConfigArchive,
    /// `#cloud-config-jsonp`: a JSON patch.
    CloudConfigJsonp,
    /// `#!`: a script run once per instance.
    Script,
    /// `#include` / `#include-once`: URLs to fetch.
    Include,
    /// `#cloud-boothook`: a script run early on every boot.
    Boothook,
    /// `#part-handler`: Python code handling parts.
    PartHandler,
    /// `#upstart-job`: obsolete.
    UpstartJob,
    /// `## template: jinja`: a Jinja template rendered by cloud-init.
    JinjaTemplate,
    /// A MIME multipart message.
    Multipart,
}

impl UserDataKind {
    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::CloudConfig => "#cloud-config",
            Self::CloudConfigArchive => "#cloud-config-archive",
            Self::CloudConfigJsonp => "#cloud-config-jsonp",
            Self::Script => "#! script",
            Self::Include => "#include",
            Self::Boothook => "#cloud-boothook",
            Self::PartHandler => "#part-handler",
            Self::UpstartJob => "#upstart-job",
            Self::JinjaTemplate => "## template: jinja",
            Self::Multipart => "MIME multipart",
        }
    }
}

/// What every user-data file may start with.
pub const ALLOWED_KINDS: &str = "#cloud-config, #!, #include, #include-once, #cloud-boothook, \
    #cloud-config-archive, #cloud-config-jsonp, #part-handler, ## template: jinja, a MIME \
    multipart message (Content-Type: multipart/...), or any of these gzip-compressed";

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// Largest decompressed size of gzip user-data (cloud-init's own limit is far higher; a seed
/// does not need more).
pub const MAX_GUNZIP_BYTES: u64 = 16 * 1024 * 1024;

/// Detects the kind of `data`; gzip is decompressed first (at most [`MAX_GUNZIP_BYTES`]) and the
/// decompressed bytes returned with `true`.
pub fn detect(file: &str, data: &[u8]) -> Result<(UserDataKind, Option<Vec<u8>>), ValidationError> {
    if data.starts_with(GZIP_MAGIC) {
        let mut out = Vec::new();
        let mut decoder = flate2::read::GzDecoder::new(data).take(MAX_GUNZIP_BYTES + 1);
        decoder.read_to_end(&mut out).map_err(|e| {
            ValidationError::new(
                file,
                format!("gzip data does not decompress: {e}"),
                "valid gzip data",
            )
        })?;
        if out.len() as u64 > MAX_GUNZIP_BYTES {
            return Err(ValidationError::new(
                file,
                "gzip data decompresses to more than the limit",
                format!("at most {MAX_GUNZIP_BYTES} bytes after decompression"),
            ));
        }
        if out.starts_with(GZIP_MAGIC) {
            return Err(ValidationError::new(
                file,
                "gzip data holds gzip data again",
                "one level of gzip",
            ));
        }
        let (kind, _) = detect(file, &out)?;
        return Ok((kind, Some(out)));
    }
    Ok((detect_text(file, data)?, None))
}

fn detect_text(file: &str, data: &[u8]) -> Result<UserDataKind, ValidationError> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(UserDataKind::Empty);
    }
    let starts = |prefix: &str| data.starts_with(prefix.as_bytes());
    let first_line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let header = String::from_utf8_lossy(first_line).to_ascii_lowercase();
    // Longer prefixes first: `#cloud-config-archive` also starts with `#cloud-config`.
    let kind = if starts("#cloud-config-archive") {
        UserDataKind::CloudConfigArchive
    } else if starts("#cloud-config-jsonp") {
        UserDataKind::CloudConfigJsonp
    } else if starts("#cloud-config") {
        UserDataKind::CloudConfig
    } else if starts("#cloud-boothook") {
        UserDataKind::Boothook
    } else if starts("#include") {
        UserDataKind::Include
    } else if starts("#part-handler") {
        UserDataKind::PartHandler
    } else if starts("#upstart-job") {
        UserDataKind::UpstartJob
    } else if starts("## template: jinja") {
        UserDataKind::JinjaTemplate
    } else if starts("#!") {
        UserDataKind::Script
    } else if header.starts_with("content-type:") || header.starts_with("mime-version:") {
        UserDataKind::Multipart
    } else {
        let shown: String = String::from_utf8_lossy(first_line)
            .chars()
            .take(40)
            .collect();
        return Err(ValidationError::new(
            file,
            format!("unknown user-data type: the first line is {shown:?}"),
            format!("content starting with {ALLOWED_KINDS}"),
        )
        .at_line(Some(1)));
    };
    Ok(kind)
}

/// The boundary of a MIME multipart message, checking its headers say multipart.
pub fn multipart_boundary(file: &str, text: &str) -> Result<String, ValidationError> {
    let allowed = "a MIME message with `Content-Type: multipart/mixed; boundary=\"...\"` \
                   and parts delimited by `--BOUNDARY`, ending with `--BOUNDARY--`";
    let headers = text.split("\n\n").next().unwrap_or_default();
    let unfolded = headers.replace("\n ", " ").replace("\n\t", " ");
    let content_type = unfolded
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .ok_or_else(|| ValidationError::new(file, "no Content-Type header", allowed))?;
    if !content_type.to_ascii_lowercase().starts_with("multipart/") {
        return Err(ValidationError::new(
            file,
            format!("Content-Type is {content_type:?}, not multipart"),
            allowed,
        ));
    }
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| {
            ValidationError::new(file, "the multipart Content-Type has no boundary", allowed)
        })?;
    if !text.contains(&format!("--{boundary}")) {
        return Err(ValidationError::new(
            file,
            format!("the boundary {boundary:?} never appears in the body"),
            allowed,
        ));
    }
    Ok(boundary)
}

/// One part of a MIME multipart message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MimePart<'a> {
    /// 1-based position of the part.
    pub index: usize,
    /// Its `Content-Type` without parameters (`text/cloud-config`), empty when absent.
    pub content_type: String,
    /// Whether it is `Content-Transfer-Encoding: base64`.
    pub base64: bool,
    /// The body after the part's headers.
    pub body: &'a str,
}

/// Splits a multipart message into its parts (headers parsed, body as text).
pub fn multipart_parts<'a>(text: &'a str, boundary: &str) -> Vec<MimePart<'a>> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    // The preamble comes before the first delimiter; the closing delimiter ends with `--`.
    for (i, chunk) in text.split(delimiter.as_str()).skip(1).enumerate() {
        if chunk.starts_with("--") {
            break;
        }
        let chunk = chunk
            .strip_prefix("\r\n")
            .or_else(|| chunk.strip_prefix('\n'))
            .unwrap_or(chunk);
        let (headers, body) = match chunk.find("\n\n") {
            Some(at) => (&chunk[..at], &chunk[at + 2..]),
            None => match chunk.find("\r\n\r\n") {
                Some(at) => (&chunk[..at], &chunk[at + 4..]),
                None => (chunk, ""),
            },
        };
        let header = |name: &str| {
            headers.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let content_type = header("content-type")
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned())
            .unwrap_or_default();
        let base64 =
            header("content-transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("base64"));
        parts.push(MimePart {
            index: i + 1,
            content_type,
            base64,
            body,
        });
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn kind(data: &[u8]) -> UserDataKind {
        detect("user-data", data).unwrap().0
    }

    #[test]
    fn detects_kinds() {
        assert_eq!(kind(b"#cloud-config\na: 1\n"), UserDataKind::CloudConfig);
        assert_eq!(
            kind(b"#cloud-config-archive\n- a\n"),
            UserDataKind::CloudConfigArchive
        );
        assert_eq!(kind(b"#!/bin/sh\necho\n"), UserDataKind::Script);
        assert_eq!(kind(b"#include\nhttps://x\n"), UserDataKind::Include);
        assert_eq!(kind(b"#include-once\nhttps://x\n"), UserDataKind::Include);
        assert_eq!(kind(b"#cloud-boothook\necho\n"), UserDataKind::Boothook);
        assert_eq!(
            kind(b"Content-Type: multipart/mixed; boundary=x\n"),
            UserDataKind::Multipart
        );
        assert_eq!(kind(b"MIME-Version: 1.0\n"), UserDataKind::Multipart);
        assert_eq!(kind(b"\n  \n"), UserDataKind::Empty);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"#!/bin/sh\n").unwrap();
        let (k, inner) = detect("user-data", &gz.finish().unwrap()).unwrap();
        assert_eq!(k, UserDataKind::Script);
        assert_eq!(inner.unwrap(), b"#!/bin/sh\n");
        let e = detect("user-data", b"hostname: x\n").unwrap_err();
        assert!(e.to_string().contains("#cloud-config"), "{e}");
        assert!(detect("user-data", &[0x1f, 0x8b, 0, 1]).is_err());
    }

    #[test]
    fn multipart_needs_a_boundary() {
        let ok = "Content-Type: multipart/mixed; boundary=\"XX\"\nMIME-Version: 1.0\n\n--XX\n\
                  Content-Type: text/cloud-config\n\n#cloud-config\n--XX--\n";
        assert_eq!(multipart_boundary("user-data", ok).unwrap(), "XX");
        let parts = multipart_parts(ok, "XX");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].content_type, "text/cloud-config");
        assert_eq!(parts[0].body, "#cloud-config\n");
        assert!(multipart_boundary("user-data", "Content-Type: text/plain\n\nx").is_err());
        assert!(multipart_boundary("user-data", "Content-Type: multipart/mixed\n\nx").is_err());
    }
}
