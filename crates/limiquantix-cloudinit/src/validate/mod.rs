//! Validation of what users give us, before anything is written.
//!
//! - user-data and vendor-data: the kind is detected ([`kind`]); cloud-config is parsed with
//!   PyYAML's YAML 1.1 semantics ([`crate::yaml11`]), must be a mapping, and is checked against
//!   cloud-init's installed JSON schema ([`schema`]) when it can be found: schema errors block,
//!   deprecated keys and unknown top-level keys warn, a missing schema warns once per call;
//! - meta-data: a YAML/JSON mapping;
//! - network-config: a version 1 or 2 document ([`network`]);
//! - host names: RFC 1123 ([`hostname`]);
//! - sizes: see [`MAX_FILE_BYTES`] and [`MAX_SEED_BYTES`].
//!
//! Every error names the file, the line and/or path when known, and what is allowed.

mod common;
pub mod hostname;
pub mod kind;
mod locate;
pub mod network;
pub mod outline_cache;
pub mod raw_index;
pub mod reduce;
pub mod schema;

use std::path::PathBuf;

use serde_json::Value;

pub use hostname::{validate_fqdn, validate_hostname};
pub use kind::UserDataKind;
pub use network::validate_network_config;

use crate::error::{ValidationError, ValidationWarning};

pub use common::{MAX_FILE_BYTES, MAX_SEED_BYTES};
use common::{check_size, json_kind, load, utf8};

/// Where cloud-init's schema comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SchemaSource {
    /// Find the installed schema ([`schema::locate_schema`]); warn and skip when absent.
    #[default]
    Auto,
    /// Use this schema file; an unreadable file is an error.
    Path(PathBuf),
    /// Do not check against the schema.
    Disabled,
}

/// Options of the validators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidateOptions {
    /// Where the cloud-config schema comes from.
    pub schema: SchemaSource,
}

/// Validates user-data.
pub fn validate_user_data(
    data: &[u8],
    options: &ValidateOptions,
) -> Result<Vec<ValidationWarning>, ValidationError> {
    validate_parts("user-data", data, options)
}

/// Validates vendor-data (the same rules as user-data).
pub fn validate_vendor_data(
    data: &[u8],
    options: &ValidateOptions,
) -> Result<Vec<ValidationWarning>, ValidationError> {
    validate_parts("vendor-data", data, options)
}

fn validate_parts(
    file: &str,
    data: &[u8],
    options: &ValidateOptions,
) -> Result<Vec<ValidationWarning>, ValidationError> {
    check_size(file, data.len())?;
    let (kind, decompressed) = kind::detect(file, data)?;
    let data = decompressed.as_deref().unwrap_or(data);
    let mut warnings = Vec::new();
    let warn = |message: &str| ValidationWarning {
        file: file.to_owned(),
        line: None,
        path: None,
        message: message.to_owned(),
    };
    match kind {
        UserDataKind::CloudConfig => {
            let text = utf8(file, data)?;
            warnings.extend(validate_cloud_config(file, text, options)?);
        }
        UserDataKind::CloudConfigArchive => {
            let doc = load(file, utf8(file, data)?)?;
            if !doc.value.is_array() {
                return Err(ValidationError::new(
                    file,
                    "a #cloud-config-archive must be a YAML list",
                    "a list of parts, each a string or a mapping with `content`",
                ));
            }
        }
        UserDataKind::Include => validate_include(file, utf8(file, data)?)?,
        UserDataKind::Multipart => {
            let text = String::from_utf8_lossy(data);
            let boundary = kind::multipart_boundary(file, &text)?;
            for part in kind::multipart_parts(&text, &boundary) {
                if part.content_type.eq_ignore_ascii_case("text/cloud-config") {
                    let name = format!("{file} (MIME part {})", part.index);
                    if part.base64 {
                        warnings.push(ValidationWarning {
                            file: name,
                            line: None,
                            path: None,
                            message: "base64-encoded cloud-config part not validated".into(),
                        });
                        continue;
                    }
                    warnings.extend(validate_cloud_config(&name, part.body, options)?);
                }
            }
        }
        UserDataKind::Empty => warnings.push(warn("is empty: cloud-init will do nothing with it")),
        UserDataKind::UpstartJob => {
            warnings.push(warn("#upstart-job is obsolete: cloud-init ignores it"));
        }
        UserDataKind::JinjaTemplate => warnings.push(warn(
            "is a Jinja template: it is rendered in the guest and cannot be validated here",
        )),
        UserDataKind::Script
        | UserDataKind::Boothook
        | UserDataKind::PartHandler
        | UserDataKind::CloudConfigJsonp => {}
    }
    Ok(warnings)
}

/// Validates a `#cloud-config` document's YAML and, when available, its schema.
fn validate_cloud_config(
    file: &str,
    text: &str,
    options: &ValidateOptions,
) -> Result<Vec<ValidationWarning>, ValidationError> {
    let mut doc = load(file, text)?;
    match &doc.value {
        Value::Object(_) => {}
        // cloud-init reads an empty cloud-config as an empty mapping.
        Value::Null => doc.value = Value::Object(serde_json::Map::new()),
        other => {
            return Err(ValidationError::new(
                file,
                format!("cloud-config is a {}, not a mapping", json_kind(other)),
                "a YAML mapping of cloud-config keys after `#cloud-config`",
            )
            .at_line(doc.line_of("")));
        }
    }
    let mut warnings = Vec::new();
    let path = match &options.schema {
        SchemaSource::Disabled => return Ok(warnings),
        SchemaSource::Path(p) => Some(p.clone()),
        SchemaSource::Auto => schema::locate_schema(),
    };
    let Some(path) = path else {
        warnings.push(ValidationWarning {
            file: file.to_owned(),
            line: None,
            path: None,
            message: "cloud-init's schema is not installed: schema validation skipped \
                      (install cloud-init or set LQ_CLOUD_INIT_SCHEMA)"
                .to_owned(),
        });
        return Ok(warnings);
    };
    let schema = schema::Schema::load(&path).map_err(|e| {
        ValidationError::new(
            "cloud-config schema",
            e,
            "a readable cloud-init JSON schema file",
        )
    })?;
    let report = schema.check(&doc).map_err(|e| {
        ValidationError::new("cloud-config schema", e, "a JSON schema that compiles")
    })?;
    if let Some(first) = report.errors.first() {
        let more = match report.errors.len() {
            1 => String::new(),
            n => format!(" ({} more schema errors)", n - 1),
        };
        return Err(ValidationError::new(
            file,
            format!("{}{more}", first.message),
            "what cloud-init's cloud-config schema allows (see `cloud-init schema --docs all`)",
        )
        .at_line(first.line)
        .at_path(first.path.clone()));
    }
    warnings.extend(report.warnings.into_iter().map(|w| ValidationWarning {
        file: file.to_owned(),
        line: w.line,
        path: (!w.path.is_empty()).then_some(w.path),
        message: w.message,
    }));
    Ok(warnings)
}

fn validate_include(file: &str, text: &str) -> Result<(), ValidationError> {
    for (i, line) in text.lines().enumerate().skip(1) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !(line.starts_with("http://") || line.starts_with("https://")) {
            return Err(ValidationError::new(
                file,
                format!("{line:?} is not a URL"),
                "one http:// or https:// URL per line after #include",
            )
            .at_line(Some(i + 1)));
        }
    }
    Ok(())
}

/// Validates meta-data: a YAML or JSON mapping (an empty file is allowed); warns when it has no
/// `instance-id`.
pub fn validate_meta_data(data: &[u8]) -> Result<Vec<ValidationWarning>, ValidationError> {
    let file = "meta-data";
    check_size(file, data.len())?;
    let doc = load(file, utf8(file, data)?)?;
    let allowed = "a YAML or JSON mapping such as `instance-id: iid-1` and `local-hostname: web1`";
    let mut warnings = Vec::new();
    match &doc.value {
        Value::Null => {}
        Value::Object(map) => {
            for key in ["instance-id", "local-hostname", "hostname"] {
                if let Some(v) = map.get(key)
                    && !(v.is_string() || v.is_number())
                {
                    return Err(ValidationError::new(
                        file,
                        format!("`{key}` is a {}", json_kind(v)),
                        "a string",
                    )
                    .at_line(doc.line_of(key))
                    .at_path(key));
                }
            }
            for key in ["local-hostname", "hostname"] {
                let Some(v) = map.get(key) else { continue };
                let name = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                // Held to the rules of the host names the daemon generates: a guest's
                // hostname tools and /etc/hosts take it as given.
                if let Err(e) = hostname::validate_fqdn(&name) {
                    return Err(ValidationError::new(file, e.problem, e.allowed)
                        .at_line(doc.line_of(key))
                        .at_path(key));
                }
            }
            if !map.contains_key("instance-id") {
                warnings.push(ValidationWarning {
                    file: file.to_owned(),
                    line: None,
                    path: None,
                    message: "has no `instance-id`: cloud-init cannot tell a new instance from \
                              a reboot"
                        .to_owned(),
                });
            }
        }
        other => {
            return Err(ValidationError::new(
                file,
                format!("meta-data is a {}, not a mapping", json_kind(other)),
                allowed,
            )
            .at_line(doc.line_of("")));
        }
    }
    Ok(warnings)
}

/// Checks the total size of all seed files against [`MAX_SEED_BYTES`].
pub fn check_total_size(total: usize) -> Result<(), ValidationError> {
    if total > MAX_SEED_BYTES {
        return Err(ValidationError::new(
            "seed",
            format!("the seed files add up to {total} bytes"),
            format!("at most {MAX_SEED_BYTES} bytes in all"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_SCHEMA: ValidateOptions = ValidateOptions {
        schema: SchemaSource::Disabled,
    };

    #[test]
    fn user_data_errors_name_file_and_line() {
        let e = validate_user_data(b"#cloud-config\na: 1\nb: [\n", &NO_SCHEMA).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("user-data", Some(4)), "{e}");
        let e = validate_user_data(b"#cloud-config\n- 1\n", &NO_SCHEMA).unwrap_err();
        assert!(e.to_string().contains("not a mapping"), "{e}");
        let e = validate_user_data(b"#include\nftp://x\n", &NO_SCHEMA).unwrap_err();
        assert_eq!(e.line, Some(2));
        let e = validate_vendor_data(b"#cloud-config\n\xff\n", &NO_SCHEMA).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("vendor-data", Some(2)));
        assert!(
            validate_user_data(b"#!/bin/sh\n", &NO_SCHEMA)
                .unwrap()
                .is_empty()
        );
        assert_eq!(validate_user_data(b"", &NO_SCHEMA).unwrap().len(), 1);
    }

    #[test]
    fn empty_cloud_config_and_multipart_parts() {
        assert!(
            validate_user_data(b"#cloud-config\n", &NO_SCHEMA)
                .unwrap()
                .is_empty()
        );
        let mime = b"Content-Type: multipart/mixed; boundary=\"B\"\nMIME-Version: 1.0\n\n\
                     --B\nContent-Type: text/x-shellscript\n\n#!/bin/sh\n\
                     --B\nContent-Type: text/cloud-config; charset=\"us-ascii\"\n\n\
                     #cloud-config\na: [\n--B--\n";
        let e = validate_user_data(mime, &NO_SCHEMA).unwrap_err();
        assert_eq!(e.file, "user-data (MIME part 2)", "{e}");
        let good = String::from_utf8_lossy(mime).replace("a: [", "a: 1");
        assert!(validate_user_data(good.as_bytes(), &NO_SCHEMA).is_ok());
    }

    #[test]
    fn meta_data_must_be_a_mapping() {
        assert!(validate_meta_data(b"instance-id: a\n").unwrap().is_empty());
        assert!(
            validate_meta_data(b"{\"instance-id\": \"a\"}")
                .unwrap()
                .is_empty()
        );
        assert_eq!(validate_meta_data(b"local-hostname: a\n").unwrap().len(), 1);
        assert!(validate_meta_data(b"- a\n").is_err());
        // Host names are held to RFC 1123, as the daemon's own are; an FQDN is fine.
        let e =
            validate_meta_data(b"instance-id: a\nlocal-hostname: \"a;rm -rf /\"\n").unwrap_err();
        assert_eq!(
            (e.line, e.path.as_deref()),
            (Some(2), Some("local-hostname"))
        );
        assert!(validate_meta_data(b"instance-id: a\nlocal-hostname: web1.example.com\n").is_ok());
        assert!(validate_meta_data(b"instance-id: a\nhostname: -x\n").is_err());
        let e = validate_meta_data(b"instance-id: [1]\n").unwrap_err();
        assert_eq!(e.path.as_deref(), Some("instance-id"));
    }

    #[test]
    fn size_limits() {
        assert!(check_total_size(MAX_SEED_BYTES).is_ok());
        assert!(check_total_size(MAX_SEED_BYTES + 1).is_err());
        let big = vec![b'#'; MAX_FILE_BYTES + 1];
        assert!(validate_user_data(&big, &NO_SCHEMA).is_err());
    }
}
