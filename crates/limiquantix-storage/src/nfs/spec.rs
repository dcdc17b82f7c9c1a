//! The share a pool mounts: its server, export, NFS version, mount options and mount point, all
//! validated, and the `mount` arguments built from them (an argv, never a shell line).

use std::ffi::OsString;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Component, Path, PathBuf};

use super::error::NfsError;

/// The NFS versions `config.nfs.version` accepts (besides empty: let `mount` negotiate).
pub const NFS_VERSIONS: &[&str] = &["3", "4", "4.0", "4.1", "4.2"];

/// Options that change what `mount` does rather than how the share is mounted, refused in
/// `config.nfs.options`: `bg` makes `mount.nfs` return success before the share is mounted and
/// keep retrying in the background; the others turn the call into a remount, a bind, a move or a
/// loop mount, or run another helper.
pub const REFUSED_OPTIONS: &[&str] = &["bg", "remount", "bind", "rbind", "move", "loop", "helper"];

/// Options that set the version, refused when `config.nfs.version` is given (it sets `vers=`).
const VERSION_OPTIONS: &[&str] = &["vers", "nfsvers", "minorversion"];

/// The longest export path and option list accepted, in bytes.
const MAX_LEN: usize = 1024;

const SERVER: &str = "config.nfs.server";
const EXPORT: &str = "config.nfs.export_path";
const VERSION: &str = "config.nfs.version";
const OPTIONS: &str = "config.nfs.options";
const MOUNT_POINT: &str = "config.nfs.mount_point";

const SERVER_ALLOWED: &str = "use a hostname (RFC 1123: dot-separated labels of letters, digits \
    and '-', 1 to 63 characters each, not starting or ending with '-', at most 253 characters), \
    an IPv4 address (192.0.2.10) or an IPv6 address, bracketed or not ([2001:db8::10], \
    fe80::1%eth0)";
const EXPORT_ALLOWED: &str = "use an absolute path of at most 1024 bytes without whitespace, \
    control characters or commas, and without '.', '..' or empty components (/srv/nfs/pool)";
const VERSION_ALLOWED: &str =
    "use one of 3, 4, 4.0, 4.1, 4.2, or leave it empty to let mount negotiate the version";
const OPTIONS_ALLOWED: &str = "use at most 1024 bytes of comma-separated key or key=value \
    entries, each key once, keys of a-z, 0-9 and '_', values of A-Z, a-z, 0-9 and . _ : / - \
    (soft,timeo=100,nconnect=4); bg, remount, bind, rbind, move, loop and helper are refused, \
    and vers, nfsvers and minorversion are refused when config.nfs.version is set";
const MOUNT_POINT_ALLOWED: &str = "use an absolute, normalized UTF-8 path other than / \
    (no '.', '..', doubled or trailing '/', no control characters), such as \
    /var/lib/limiquantix/pools/nfs1";

fn invalid(field: &'static str, allowed: &'static str, problem: String) -> NfsError {
    NfsError::Invalid {
        field,
        problem,
        allowed,
    }
}

/// A validated NFS share and where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsSpec {
    server: String,
    export_path: String,
    version: String,
    options: String,
    mount_point: PathBuf,
}

impl NfsSpec {
    /// Validates a share's configuration; each error names its `config.nfs.*` field, what is
    /// wrong and what is allowed.
    ///
    /// - `server`: a hostname (RFC 1123 labels), an IPv4 address, or an IPv6 address, bracketed
    ///   or not, with an optional `%zone`; kept as written, without the brackets.
    /// - `export_path`: absolute and normalized, at most 1024 bytes, no whitespace, control
    ///   characters or commas.
    /// - `version`: one of [`NFS_VERSIONS`], or empty to pass no `vers=` and let `mount`
    ///   negotiate the highest version both sides support.
    /// - `options`: extra `mount.nfs` options, `key` or `key=value`, comma-separated, or empty;
    ///   [`REFUSED_OPTIONS`] are refused, as are `vers`, `nfsvers` and `minorversion` when
    ///   `version` is given. Beyond that, options are passed through as written.
    /// - `mount_point`: absolute and normalized (only the root and normal components), UTF-8,
    ///   not `/`; it must match `/proc/self/mountinfo` byte for byte.
    pub fn new(
        server: &str,
        export_path: &str,
        version: &str,
        options: &str,
        mount_point: &Path,
    ) -> Result<Self, NfsError> {
        let server = validate_server(server)?;
        validate_export(export_path)?;
        validate_version(version)?;
        validate_options(options, !version.is_empty())?;
        validate_mount_point(mount_point)?;
        Ok(Self {
            server,
            export_path: export_path.to_owned(),
            version: version.to_owned(),
            options: options.to_owned(),
            mount_point: mount_point.to_owned(),
        })
    }

    /// The server as configured, without brackets around an IPv6 address.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The exported path on the server.
    pub fn export_path(&self) -> &str {
        &self.export_path
    }

    /// The NFS version (`4.2`, ...), or empty when `mount` negotiates it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The extra mount options as configured (possibly empty).
    pub fn options(&self) -> &str {
        &self.options
    }

    /// Where the share is mounted.
    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// The mount source, `server:/export`, with an IPv6 address in brackets
    /// (`[fe80::1]:/export`); the kernel shows it as the mount's source in mountinfo.
    pub fn source(&self) -> String {
        if self.server.contains(':') {
            format!("[{}]:{}", self.server, self.export_path)
        } else {
            format!("{}:{}", self.server, self.export_path)
        }
    }

    /// The `-o` value: `vers=<version>` (if set) followed by the configured options (if any);
    /// `None` when there are neither.
    pub fn mount_options(&self) -> Option<String> {
        let vers = (!self.version.is_empty()).then(|| format!("vers={}", self.version));
        let opts = (!self.options.is_empty()).then(|| self.options.clone());
        let all: Vec<String> = vers.into_iter().chain(opts).collect();
        (!all.is_empty()).then(|| all.join(","))
    }

    /// The arguments for util-linux `mount` (after the program name):
    /// `-t nfs [-o <options>] <source> <mount_point>`. `mount -t nfs` hands the call to
    /// `mount.nfs`, which reads `vers=` and the other options.
    pub fn mount_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["-t".into(), "nfs".into()];
        if let Some(opts) = self.mount_options() {
            args.push("-o".into());
            args.push(opts.into());
        }
        args.push(self.source().into());
        args.push(self.mount_point.clone().into_os_string());
        args
    }
}

/// The server with any brackets removed, or why it is neither a hostname nor an address.
fn validate_server(s: &str) -> Result<String, NfsError> {
    let err = |problem: String| invalid(SERVER, SERVER_ALLOWED, problem);
    if s.is_empty() {
        return Err(err("is empty".into()));
    }
    if let Some(inner) = s.strip_prefix('[') {
        let Some(inner) = inner.strip_suffix(']') else {
            return Err(err(format!("{s:?} opens '[' without a closing ']'")));
        };
        if is_ipv6(inner) {
            return Ok(inner.to_owned());
        }
        return Err(err(format!(
            "{s:?} has brackets but no IPv6 address in them"
        )));
    }
    if s.contains(':') {
        if is_ipv6(s) {
            return Ok(s.to_owned());
        }
        return Err(err(format!("{s:?} has ':' but is not an IPv6 address")));
    }
    if s.parse::<Ipv4Addr>().is_ok() {
        return Ok(s.to_owned());
    }
    if let Some(problem) = hostname_problem(s) {
        return Err(err(format!("{s:?} is not a hostname: {problem}")));
    }
    Ok(s.to_owned())
}

/// An IPv6 address with an optional `%zone` (an interface name).
fn is_ipv6(s: &str) -> bool {
    let (addr, zone) = match s.split_once('%') {
        Some((addr, zone)) => (addr, Some(zone)),
        None => (s, None),
    };
    let zone_ok = zone.is_none_or(|z| {
        (1..=15).contains(&z.len())
            && z.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    });
    zone_ok && addr.parse::<Ipv6Addr>().is_ok()
}

/// Why `s` is not an RFC 1123 hostname, or `None` when it is one.
fn hostname_problem(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some(format!("it is {} characters long", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && *c != '-' && *c != '.')
    {
        return Some(format!("it contains {c:?}"));
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Some("it has an empty label (a dot at either end or two in a row)".into());
        }
        if label.len() > 63 {
            return Some(format!(
                "label {label:?} is {} characters long",
                label.len()
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("label {label:?} starts or ends with '-'"));
        }
    }
    let last = s.rsplit('.').next().unwrap_or(s);
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Some("its last label is all digits, and it is not a valid IPv4 address".into());
    }
    None
}

fn validate_export(s: &str) -> Result<(), NfsError> {
    let err = |problem: String| Err(invalid(EXPORT, EXPORT_ALLOWED, problem));
    if s.is_empty() {
        return err("is empty".into());
    }
    if s.len() > MAX_LEN {
        return err(format!("is {} bytes long", s.len()));
    }
    if !s.starts_with('/') {
        return err(format!("{s:?} is not absolute"));
    }
    if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return err(format!("{s:?} contains {c:?}"));
    }
    if s.contains(',') {
        return err(format!("{s:?} contains a comma"));
    }
    if s == "/" {
        return Ok(());
    }
    for part in s[1..].split('/') {
        match part {
            "" => {
                return err(format!(
                    "{s:?} has an empty component (a doubled or trailing '/')"
                ));
            }
            "." | ".." => return err(format!("{s:?} has a {part:?} component")),
            _ => {}
        }
    }
    Ok(())
}

fn validate_version(s: &str) -> Result<(), NfsError> {
    if s.is_empty() || NFS_VERSIONS.contains(&s) {
        Ok(())
    } else {
        Err(invalid(
            VERSION,
            VERSION_ALLOWED,
            format!("{s:?} is not a supported NFS version"),
        ))
    }
}

fn validate_options(s: &str, version_set: bool) -> Result<(), NfsError> {
    let err = |problem: String| Err(invalid(OPTIONS, OPTIONS_ALLOWED, problem));
    if s.is_empty() {
        return Ok(());
    }
    if s.len() > MAX_LEN {
        return err(format!("is {} bytes long", s.len()));
    }
    let mut seen: Vec<&str> = Vec::new();
    for entry in s.split(',') {
        let (key, value) = match entry.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (entry, None),
        };
        if entry.is_empty() {
            return err(format!(
                "{s:?} has an empty entry (a doubled, leading or trailing comma)"
            ));
        }
        if key.is_empty() {
            return err(format!("{entry:?} has no key before '='"));
        }
        if let Some(c) = key
            .chars()
            .find(|c| !c.is_ascii_lowercase() && !c.is_ascii_digit() && *c != '_')
        {
            return err(format!("key {key:?} contains {c:?}"));
        }
        if let Some(v) = value {
            let bad = v
                .chars()
                .find(|c| !c.is_ascii_alphanumeric() && !"._:/-".contains(*c));
            if v.is_empty() {
                return err(format!("{entry:?} has an empty value"));
            } else if let Some(c) = bad {
                return err(format!("the value of {key} contains {c:?}"));
            }
        }
        if REFUSED_OPTIONS.contains(&key) {
            return err(format!(
                "{key} is refused: it changes what mount does, not how the share is mounted"
            ));
        }
        if version_set && VERSION_OPTIONS.contains(&key) {
            return err(format!(
                "{key} is refused: config.nfs.version sets the version"
            ));
        }
        if seen.contains(&key) {
            return err(format!("{key} is given twice"));
        }
        seen.push(key);
    }
    Ok(())
}

/// Checks a mount point: absolute, normalized (only the root and normal components, so it reads
/// the same as in `/proc/self/mountinfo`), UTF-8, no control characters, not `/`.
pub(super) fn validate_mount_point(p: &Path) -> Result<(), NfsError> {
    let err = |problem: String| Err(invalid(MOUNT_POINT, MOUNT_POINT_ALLOWED, problem));
    let Some(s) = p.to_str() else {
        return err(format!("{p:?} is not UTF-8"));
    };
    if !p.is_absolute() {
        return err(format!("{s:?} is not absolute"));
    }
    if s.chars().any(char::is_control) {
        return err(format!("{s:?} contains a control character"));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return err(format!("{s:?} has a '..' component"));
    }
    let normal: PathBuf = p.components().collect();
    if normal.as_os_str() != p.as_os_str() {
        return err(format!("{s:?} is not normalized; write it as {normal:?}"));
    }
    if normal == Path::new("/") {
        return err("is the root directory".into());
    }
    Ok(())
}
