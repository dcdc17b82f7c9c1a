//! network-config: checks for user-given documents (version 1 or 2).

use serde_json::Value;

use super::{check_size, json_kind, load, utf8};
use crate::error::{ValidationError, ValidationWarning};

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
    let at = |path: &str| {
        let full = format!("{prefix}{path}");
        (doc.line_of(&full), full)
    };
    let error = |path: &str, problem: String, allowed: &str| {
        let (line, full) = at(path);
        ValidationError::new(FILE, problem, allowed)
            .at_line(line)
            .at_path(full)
    };
    let Value::Object(map) = root else {
        return Err(error(
            "",
            format!("network-config is a {}, not a mapping", json_kind(root)),
            "a mapping with `version: 1` or `version: 2`",
        ));
    };
    let mut warnings = Vec::new();
    match map.get("version").and_then(Value::as_i64) {
        Some(1) => {
            let allowed = "`config:` a list of mappings, each with a `type` \
                           (physical, bond, bridge, vlan, nameserver, route)";
            let Some(Value::Array(items)) = map.get("config") else {
                return Err(error(
                    "config",
                    "version 1 needs a `config` list".into(),
                    allowed,
                ));
            };
            for (i, item) in items.iter().enumerate() {
                if item.get("type").and_then(Value::as_str).is_none() {
                    return Err(error(
                        &format!("config.{i}"),
                        "the entry has no `type`".into(),
                        allowed,
                    ));
                }
            }
        }
        Some(2) => {
            for (key, value) in map {
                if !V2_KEYS.contains(&key.as_str()) {
                    let (line, path) = at(key);
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
                    return Err(error(
                        key,
                        format!("`{key}` is a {}", json_kind(value)),
                        "a mapping of device names to their settings",
                    ));
                };
                for (name, settings) in devices {
                    if !settings.is_object() {
                        return Err(error(
                            &format!("{key}.{name}"),
                            format!("device {name:?} is a {}", json_kind(settings)),
                            "a mapping of settings such as `dhcp4: true` or `match:`",
                        ));
                    }
                }
            }
        }
        _ => {
            return Err(error(
                "version",
                format!(
                    "version is {}",
                    map.get("version")
                        .map_or("missing".to_owned(), ToString::to_string)
                ),
                "`version: 1` or `version: 2`",
            ));
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
