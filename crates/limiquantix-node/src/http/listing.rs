//! A guest directory listing from GNU find's `-printf` output: eight NUL-separated fields per
//! entry (type, type after symlinks, size, octal mode, mtime, owner, group, name), so no name
//! can break the parse.

use serde::Serialize;

/// find's format: type, followed type, size, mode, mtime (seconds.fraction), user, group, name.
pub const FORMAT: &str = "%y\\0%Y\\0%s\\0%m\\0%T@\\0%u\\0%g\\0%f\\0";

/// One entry, as the control plane's file browser reads it.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// File name.
    pub name: String,
    /// Full guest path.
    pub path: String,
    /// A directory (or a symlink to one).
    pub is_directory: bool,
    /// A symbolic link.
    pub is_symlink: bool,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Permission bits.
    pub mode: u32,
    /// RFC 3339.
    pub modified_at: String,
    /// Owner.
    pub owner: String,
    /// Group.
    pub group: String,
}

/// The entries of `out` (the listing of `dir`), sorted directories first then by name, at
/// most `max`; hidden names only with `hidden`. The flag says whether entries were left out
/// for `max`.
pub fn parse(out: &str, dir: &str, hidden: bool, max: usize) -> (Vec<Entry>, bool) {
    let fields: Vec<&str> = out.split('\0').collect();
    let mut entries: Vec<Entry> = fields
        .chunks_exact(8)
        .filter(|f| hidden || !f[7].starts_with('.'))
        .map(|f| {
            let secs = f[4]
                .split('.')
                .next()
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0);
            Entry {
                name: f[7].to_string(),
                path: format!("{}/{}", dir.trim_end_matches('/'), f[7]),
                is_directory: f[1] == "d",
                is_symlink: f[0] == "l",
                size_bytes: f[2].parse().unwrap_or(0),
                mode: u32::from_str_radix(f[3], 8).unwrap_or(0),
                modified_at: prost_types::Timestamp {
                    seconds: secs,
                    nanos: 0,
                }
                .to_string(),
                owner: f[5].to_string(),
                group: f[6].to_string(),
            }
        })
        .collect();
    entries.sort_by(|a, b| {
        b.is_directory
            .cmp(&a.is_directory)
            .then(a.name.cmp(&b.name))
    });
    let truncated = entries.len() > max;
    entries.truncate(max);
    (entries, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_any_character_parse() {
        let rows = [
            [
                "f",
                "f",
                "12",
                "644",
                "1700000000.5",
                "root",
                "root",
                "a\tb\nc",
            ],
            ["d", "d", "4096", "755", "1700000000.0", "u", "g", "etc"],
            ["l", "d", "7", "777", "0.0", "root", "root", ".hidden"],
        ];
        let out: String = rows.iter().flatten().map(|f| format!("{f}\0")).collect();
        let out = out.as_str();
        let (e, cut) = parse(out, "/", false, 10);
        assert!(!cut);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].name, "etc");
        assert!(e[0].is_directory);
        assert_eq!(e[1].name, "a\tb\nc");
        assert_eq!(e[1].path, "/a\tb\nc");
        assert_eq!(e[1].mode, 0o644);
        assert_eq!(e[1].size_bytes, 12);
        assert_eq!(e[1].modified_at, "2023-11-14T22:13:20Z");
        let (e, cut) = parse(out, "/x/", true, 2);
        assert!(cut);
        assert!(e[0].is_symlink && e[0].is_directory && e[0].path == "/x/.hidden");
    }
}
