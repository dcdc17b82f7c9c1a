//! network-config: checks for user-given documents (version 1 or 2).

use serde_json::{Map, Value};

use super::common::{check_size, json_kind, load, utf8};
use crate::error::{ValidationError, ValidationWarning};
use crate::yaml11::Loaded;

const FILE: &str = "network-config";

/// Top-level keys of a version 2 document.
const V2_KEYS: &[&str] = &[
    "version",
    "renderer",
    "ethernets",
    "bonds",
    "bridges",
    "vlans",
    "wifis",
    "tunnels",
    "vrfs",
    "modems",
];

/// Validates a network-config document: a mapping (optionally under a `network:` key) with
/// `version: 1` and a `config` list of mappings that each have a `type`, or `version: 2` with
/// device sections (`ethernets`, `bonds`, `bridges`, `vlans`, `wifis`) that map names to
/// mappings. Unknown version 2 top-level keys warn.
pub fn validate_network_config(data: &[u8]) -> Result<Vec<ValidationWarning>, ValidationError> {
    check_size(FILE, data.len())?;
    let doc = load(FILE, utf8(FILE, data)?)?;
    let (root, prefix) = match doc.value.get("network") {
        Some(inner) if doc.value.get("version").is_none() => (inner, "network."),
        _ => (&doc.value, ""),
    };
    let at = Locate { doc: &doc, prefix };
    let Value::Object(map) = root else {
        return Err(at.error(
            "",
            format!("network-config is a {}, not a mapping", json_kind(root)),
            "a mapping with `version: 1` or `version: 2`",
        ));
    };
    match map.get("version").and_then(Value::as_i64) {
        Some(1) => check_v1(map, &at).map(|()| Vec::new()),
        Some(2) => check_v2(map, &at),
        _ => Err(at.error(
            "version",
            format!(
                "version is {}",
                map.get("version")
                    .map_or("missing".to_owned(), ToString::to_string)
            ),
            "`version: 1` or `version: 2`",
        )),
    }
}

/// Where a path of the document is: its line, and its full path (under `network:` or not).
struct Locate<'a> {
    doc: &'a Loaded,
    prefix: &'a str,
}

impl Locate<'_> {
    /// The line and the full path of `path`.
    fn at(&self, path: &str) -> (Option<usize>, String) {
        let full = format!("{}{path}", self.prefix);
        (self.doc.line_of(&full), full)
    }

    /// An error at `path`.
    fn error(&self, path: &str, problem: String, allowed: &str) -> ValidationError {
        let (line, full) = self.at(path);
        ValidationError::new(FILE, problem, allowed)
            .at_line(line)
            .at_path(full)
    }
}

/// Version 1: a `config` list of mappings, each with a `type`.
fn check_v1(map: &Map<String, Value>, at: &Locate<'_>) -> Result<(), ValidationError> {
    let allowed = "`config:` a list of mappings, each with a `type` \
                   (physical, bond, bridge, vlan, nameserver, route)";
    let Some(Value::Array(items)) = map.get("config") else {
        return Err(at.error("config", "version 1 needs a `config` list".into(), allowed));
    };
    for (i, item) in items.iter().enumerate() {
        if item.get("type").and_then(Value::as_str).is_none() {
            return Err(at.error(
                &format!("config.{i}"),
                "the entry has no `type`".into(),
                allowed,
            ));
        }
    }
    Ok(())
}

/// Version 2: device sections mapping names to settings; unknown keys warn.
fn check_v2(
    map: &Map<String, Value>,
    at: &Locate<'_>,
) -> Result<Vec<ValidationWarning>, ValidationError> {
    let mut warnings = Vec::new();
    for (key, value) in map {
        if !V2_KEYS.contains(&key.as_str()) {
            let (line, path) = at.at(key);
            warnings.push(ValidationWarning {
                file: FILE.to_owned(),
                line,
                path: Some(path),
                message: format!("unknown version 2 key {key:?}"),
            });
            continue;
        }
        if matches!(key.as_str(), "version" | "renderer") {
            continue;
        }
        let Value::Object(devices) = value else {
            return Err(at.error(
                key,
                format!("`{key}` is a {}", json_kind(value)),
                "a mapping of device names to their settings",
            ));
        };
        for (name, settings) in devices {
            if !settings.is_object() {
                return Err(at.error(
                    &format!("{key}.{name}"),
                    format!("device {name:?} is a {}", json_kind(settings)),
                    "a mapping of settings such as `dhcp4: true` or `match:`",
                ));
            }
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(
            validate_network_config(b"version: 2\nethernets:\n  eth0: {dhcp4: true}\n").is_ok()
        );
        assert!(validate_network_config(b"network:\n  version: 2\n  ethernets: {}\n").is_ok());
        assert!(
            validate_network_config(b"version: 1\nconfig:\n  - type: physical\n    name: eth0\n")
                .is_ok()
        );
        let e = validate_network_config(b"version: 3\n").unwrap_err();
        assert!(
            e.to_string().contains("`version: 1` or `version: 2`"),
            "{e}"
        );
        let e = validate_network_config(b"version: 1\nconfig:\n  - name: eth0\n").unwrap_err();
        assert_eq!(
            (e.line, e.path.as_deref()),
            (Some(3), Some("config.0")),
            "{e}"
        );
        let e = validate_network_config(b"version: 2\nethernets:\n  eth0: yes\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let w = validate_network_config(b"version: 2\nethernet: {}\n").unwrap();
        assert_eq!(w.len(), 1);
    }
}
