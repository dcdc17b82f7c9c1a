//! Scalars and tags: PyYAML's YAML 1.1 implicit resolvers for plain scalars, the `!!` tags
//! `safe_load` has constructors for, and the check of collection tags.

use std::sync::LazyLock;

use regex::Regex;
use saphyr_parser::{ScalarStyle, Tag};
use serde_json::{Number, Value};

use super::document::{YamlError, err};

/// The non-specific tag `!`: a plain string (or a collection of its own kind).
fn is_non_specific(tag: &Tag) -> bool {
    (tag.handle.is_empty() && tag.suffix == "!") || (tag.handle == "!" && tag.suffix.is_empty())
}

/// Refuses a collection tag `safe_load` has no constructor for (`expected` is `seq` or `map`).
pub(super) fn check_collection_tag(
    tag: Option<&Tag>,
    expected: &str,
    line: usize,
) -> Result<(), YamlError> {
    match tag {
        None => Ok(()),
        Some(t) if is_non_specific(t) => Ok(()),
        Some(t) if t.is_yaml_core_schema() && t.suffix == expected => Ok(()),
        Some(t) => err(
            line,
            format!("could not determine a constructor for the tag '{t}'"),
        ),
    }
}

/// The value of a scalar, as PyYAML `safe_load` constructs it.
pub(super) fn scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    line: usize,
) -> Result<Value, YamlError> {
    // PyYAML resolves a plain scalar tagged `!` as if it had no tag.
    if let Some(tag) = tag.filter(|t| !is_non_specific(t)) {
        return tagged(text, tag, line);
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_owned()));
    }
    if text == "=" {
        return err(
            line,
            "could not determine a constructor for the tag 'tag:yaml.org,2002:value' \
             (a plain `=`; quote it)",
        );
    }
    Ok(resolve_plain(text))
}

/// The value of a scalar with an explicit (specific) tag.
fn tagged(text: &str, tag: &Tag, line: usize) -> Result<Value, YamlError> {
    if !tag.is_yaml_core_schema() {
        return err(
            line,
            format!("could not determine a constructor for the tag '{tag}'"),
        );
    }
    let resolved = resolve_plain(text);
    let fits = |kind: &str| kind_of(&resolved) == Some(kind);
    match tag.suffix.as_str() {
        "str" | "binary" | "timestamp" => Ok(Value::String(text.to_owned())),
        "int" | "float" | "bool" | "null" if fits(&tag.suffix) => Ok(resolved),
        "float" if fits("int") => Ok(resolved
            .as_f64()
            .and_then(Number::from_f64)
            .map_or(resolved, Value::Number)),
        suffix @ ("int" | "float" | "bool" | "null") => {
            err(line, format!("{text:?} is not a valid !!{suffix} value"))
        }
        _ => err(
            line,
            format!("could not determine a constructor for the tag '{tag}'"),
        ),
    }
}

fn kind_of(value: &Value) -> Option<&'static str> {
    match value {
        Value::Null => Some("null"),
        Value::Bool(_) => Some("bool"),
        Value::Number(n) if n.is_f64() => Some("float"),
        Value::Number(_) => Some("int"),
        _ => None,
    }
}

/// PyYAML's bool resolver, `^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$`.
fn is_bool(text: &str) -> bool {
    matches!(
        text,
        "yes"
            | "Yes"
            | "YES"
            | "no"
            | "No"
            | "NO"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// Whether `text` can be an int or a float at all: every alternative of [`INT`] and [`FLOAT`]
/// starts with a sign, a digit or a dot (most scalars are words, and need no regex compiled).
fn may_be_number(text: &str) -> bool {
    matches!(
        text.as_bytes().first(),
        Some(b'-' | b'+' | b'.' | b'0'..=b'9')
    )
}
static INT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
    )
    .expect("valid regex")
});
static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    )
    .expect("valid regex")
});
static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
    )
    .expect("valid regex")
});

/// Resolves a plain scalar with PyYAML's implicit resolvers.
fn resolve_plain(text: &str) -> Value {
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Value::Null;
    }
    if is_bool(text) {
        return Value::Bool(matches!(
            text,
            "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON"
        ));
    }
    if !may_be_number(text) {
        return Value::String(text.to_owned());
    }
    if INT.is_match(text) {
        if let Some(n) = parse_int(text) {
            return n;
        }
    } else if FLOAT.is_match(text) {
        return parse_float(text);
    }
    // Timestamps stay strings: JSON has no date type.
    Value::String(text.to_owned())
}

fn parse_int(text: &str) -> Option<Value> {
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (negative, digits) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, clean.as_str()),
    };
    let magnitude: i128 = if digits == "0" {
        0
    } else if let Some(bin) = digits.strip_prefix("0b") {
        i128::from_str_radix(bin, 2).ok()?
    } else if let Some(hex) = digits.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix('0') {
        i128::from_str_radix(oct, 8).ok()?
    } else if digits.contains(':') {
        digits.split(':').try_fold(0i128, |acc, part| {
            acc.checked_mul(60)?.checked_add(part.parse::<i128>().ok()?)
        })?
    } else {
        digits.parse().ok()?
    };
    let value = if negative { -magnitude } else { magnitude };
    if let Ok(v) = i64::try_from(value) {
        Some(Value::Number(v.into()))
    } else if let Ok(v) = u64::try_from(value) {
        Some(Value::Number(v.into()))
    } else {
        Some(Value::String(text.to_owned()))
    }
}

fn parse_float(text: &str) -> Value {
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    if lower.ends_with(".inf") || lower.ends_with(".nan") {
        return Value::String(text.to_owned());
    }
    let (negative, digits) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, clean.as_str()),
    };
    let magnitude = if digits.contains(':') {
        digits.split(':').fold(0.0, |acc, part| {
            acc * 60.0 + part.parse::<f64>().unwrap_or(0.0)
        })
    } else {
        digits.parse::<f64>().unwrap_or(0.0)
    };
    let value = if negative { -magnitude } else { magnitude };
    Number::from_f64(value).map_or_else(|| Value::String(text.to_owned()), Value::Number)
}

/// Whether a plain scalar would be read as a timestamp by PyYAML.
pub fn is_timestamp(text: &str) -> bool {
    TIMESTAMP.is_match(text)
}

#[cfg(test)]
mod prefilter_tests {
    use super::*;

    /// The word checks answer exactly what the regexes they stand in front of answer.
    #[test]
    fn the_prefilters_agree_with_the_resolver_regexes() {
        let bool_re = Regex::new(
            r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
        )
        .unwrap();
        let samples = [
            "",
            "yes",
            "Yes",
            "YES",
            "yEs",
            "no",
            "NO",
            "nO",
            "true",
            "True",
            "TRUE",
            "tRUE",
            "false",
            "False",
            "FALSE",
            "on",
            "On",
            "ON",
            "oN",
            "off",
            "Off",
            "OFF",
            "y",
            "n",
            "web1",
            "0",
            "-1",
            "+1",
            "0b101",
            "0o17",
            "017",
            "0x1F",
            "1_000",
            "190:20:30",
            ".5",
            "-.inf",
            ".NaN",
            "1.5e+3",
            "1e3",
            "x1",
            " 1",
            "~",
            "null",
            "1.",
            "+.INF",
            "_1",
            "Infinity",
            "nan",
            "1:2",
            "2001-12-14",
        ];
        for s in samples {
            assert_eq!(is_bool(s), bool_re.is_match(s), "{s:?}");
            if INT.is_match(s) || FLOAT.is_match(s) {
                assert!(may_be_number(s), "{s:?}");
            }
        }
    }
}
