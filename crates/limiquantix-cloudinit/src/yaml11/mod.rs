//! A YAML loader with the semantics cloud-init uses: PyYAML `safe_load` (YAML 1.1).
//!
//! The parser is `saphyr-parser` (YAML 1.2 syntax); this module resolves plain scalars with
//! PyYAML's YAML 1.1 rules (`yes`/`no`/`on`/`off` are booleans, `0755` is octal, `1:30` is
//! sexagesimal, `2001-12-14` a timestamp, `<<` a merge key, `=` a value that `safe_load`
//! refuses), refuses tags `safe_load` has no constructor for, and refuses streams with more
//! than one document. The result is JSON (for the schema validator) plus the line of every
//! value, so errors can point at a line.
//!
//! Timestamps, `.inf`/`.nan` and `!!binary` become strings: JSON has no such types.
//!
//! Limits: collections nest at most [`MAX_DEPTH`] levels (PyYAML itself fails not much deeper)
//! and aliases may copy at most [`MAX_NODES`] values, so a small "billion laughs" document
//! cannot exhaust memory.

mod document;
mod events;
mod limits;
mod scalar;

pub use document::{Loaded, YamlError};
pub use events::load;
pub use limits::{MAX_DEPTH, MAX_NODES};
pub use scalar::is_timestamp;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn v(text: &str) -> Value {
        load(text).unwrap().value
    }

    #[test]
    fn yaml11_scalars() {
        assert_eq!(
            v(
                "a: yes\nb: no\nc: on\nd: Off\ne: 0755\nf: 1e3\ng: 1_000\nh: 0x1F\ni: 1:30\nj: 1.5\nk: ~\nl: '0755'\nm: 0b11\nn: 2001-12-14\no: .5\np: -017\n"
            ),
            json!({"a": true, "b": false, "c": true, "d": false, "e": 493, "f": "1e3",
                   "g": 1000, "h": 31, "i": 90, "j": 1.5, "k": null, "l": "0755", "m": 3,
                   "n": "2001-12-14", "o": 0.5, "p": -15})
        );
        assert!(is_timestamp("2001-12-14"));
    }

    #[test]
    fn merges_anchors_and_tags() {
        assert_eq!(
            v("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\nlist: [*b]\ns: !!str 12\n"),
            json!({"base": {"x": 1, "y": 2}, "other": {"x": 1, "y": 3},
                   "list": [{"x": 1, "y": 2}], "s": "12"})
        );
        assert_eq!(
            v("a: &a {k: 1}\nb: &b {k: 2, j: 2}\nc:\n  <<: [*a, *b]\n"),
            json!({"a": {"k": 1}, "b": {"k": 2, "j": 2}, "c": {"k": 1, "j": 2}})
        );
    }

    #[test]
    fn errors_where_safe_load_fails() {
        for (doc, line) in [
            ("a: =\n", 1),
            ("a: 1\nb: !python/object x\n", 2),
            ("a: 1\n---\nb: 2\n", 2),
            ("? [1]\n: 2\n", 1),
            ("a: *nope\n", 1),
            ("a: [1\n", 2),
            ("a: !!int x\n", 1),
        ] {
            let e = load(doc).unwrap_err();
            assert_eq!(e.line, Some(line), "{doc:?}: {e:?}");
        }
    }

    #[test]
    fn depth_and_alias_expansion_are_bounded() {
        let deep = format!("a:\n  {}x\n", "- ".repeat(MAX_DEPTH + 1));
        assert!(load(&deep).unwrap_err().message.contains("nest deeper"));
        let ok = format!("a:\n  {}x\n", "- ".repeat(MAX_DEPTH - 2));
        assert!(load(&ok).is_ok());
        let mut bomb = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let refs = vec![format!("*l{}", i - 1); 10].join(", ");
            bomb.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
        }
        assert!(load(&bomb).unwrap_err().message.contains("aliases expand"));
    }

    #[test]
    fn lines_by_path() {
        let loaded = load("#cloud-config\nusers:\n  - name: a\n    shell: /bin/sh\n").unwrap();
        assert_eq!(loaded.line_of("users.0.shell"), Some(4));
        assert_eq!(loaded.line_of("users.0.name"), Some(3));
        assert_eq!(loaded.line_of("users"), Some(2));
        assert_eq!(loaded.line_of("users.0.missing.x"), Some(3));
    }
}
