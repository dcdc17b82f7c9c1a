//! Options that QEMU 7.2 parses only in `key=value,...` form (`-chardev`, `-name`, `-machine`).
//!
//! `-chardev` takes no JSON on QEMU 7.2, so a path in it is escaped the QemuOpts way: every
//! comma doubled (`a,b` → `path=a,,b`), which QEMU reads back as one literal comma. Nothing else is
//! special inside a value, so a doubled-comma value cannot end the option or start another one.
//! The paths involved are the backend's own (under the run and state directories); non-UTF-8
//! bytes pass through unchanged.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// Doubles every comma in `value`.
pub(super) fn escape(value: &OsStr) -> OsString {
    let mut out = Vec::with_capacity(value.len());
    for &b in value.as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

/// `<prefix><escaped value><suffix>` as one argument.
pub(super) fn with_value(prefix: &str, value: &OsStr, suffix: &str) -> OsString {
    let mut s = OsString::from(prefix);
    s.push(escape(value));
    s.push(suffix);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_are_doubled_and_bytes_kept() {
        let raw = OsStr::from_bytes(b"/run/a,server=off,b\xff");
        assert_eq!(escape(raw).as_bytes(), b"/run/a,,server=off,,b\xff");
        assert_eq!(
            with_value("file,id=s,path=", OsStr::new("/x,y"), ",append=on"),
            OsString::from("file,id=s,path=/x,,y,append=on")
        );
    }
}
