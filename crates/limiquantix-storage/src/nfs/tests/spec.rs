//! Share validation and `mount` arguments.

use std::ffi::OsString;
use std::path::Path;

use crate::nfs::*;

const MP: &str = "/var/lib/limiquantix/pools/nfs1";

fn spec(server: &str, export: &str, version: &str, options: &str) -> NfsSpec {
    NfsSpec::new(server, export, version, options, Path::new(MP)).unwrap()
}

/// The message of the error for one bad field (the others valid).
fn error(server: &str, export: &str, version: &str, options: &str, mp: &str) -> String {
    NfsSpec::new(server, export, version, options, Path::new(mp))
        .unwrap_err()
        .to_string()
}

fn server_error(server: &str) -> String {
    error(server, "/srv", "", "", MP)
}

fn export_error(export: &str) -> String {
    error("nas", export, "", "", MP)
}

fn options_error(version: &str, options: &str) -> String {
    error("nas", "/srv", version, options, MP)
}

fn mount_point_error(mp: &str) -> String {
    error("nas", "/srv", "", "", mp)
}

fn strs(args: &[OsString]) -> Vec<&str> {
    args.iter().map(|a| a.to_str().unwrap()).collect()
}

#[test]
fn servers_accepted() {
    for (given, kept) in [
        ("nas", "nas"),
        ("nas-01.example.com", "nas-01.example.com"),
        ("NAS.Example.COM", "NAS.Example.COM"),
        ("192.0.2.10", "192.0.2.10"),
        ("2001:db8::10", "2001:db8::10"),
        ("[2001:db8::10]", "2001:db8::10"),
        ("[fe80::1%eth0]", "fe80::1%eth0"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("a1.b2", "a1.b2"),
    ] {
        assert_eq!(spec(given, "/srv", "", "").server(), kept, "{given}");
    }
    let long_label = "a".repeat(63);
    spec(&format!("{long_label}.example"), "/srv", "", "");
}

#[test]
fn servers_refused_with_reasons() {
    for (given, reason) in [
        ("", "config.nfs.server: is empty; use a hostname (RFC 1123"),
        ("nas_1", "\"nas_1\" is not a hostname: it contains '_'"),
        ("nas box", "it contains ' '"),
        ("-nas", "label \"-nas\" starts or ends with '-'"),
        ("nas-.example", "label \"nas-\" starts or ends with '-'"),
        ("nas..example", "it has an empty label"),
        ("nas.", "it has an empty label"),
        ("192.0.2.256", "its last label is all digits"),
        ("01.2.3.4", "its last label is all digits"),
        ("[2001:db8::10", "opens '[' without a closing ']'"),
        ("[nas]", "has brackets but no IPv6 address in them"),
        (
            "nas:2049",
            "\"nas:2049\" has ':' but is not an IPv6 address",
        ),
        ("fe80::1%", "has ':' but is not an IPv6 address"),
        ("fe80::1%eth 0", "has ':' but is not an IPv6 address"),
        ("nas/x", "it contains '/'"),
    ] {
        let msg = server_error(given);
        assert!(msg.starts_with("config.nfs.server: "), "{given}: {msg}");
        assert!(msg.contains(reason), "{given}: {msg}");
        assert!(
            msg.contains("an IPv4 address (192.0.2.10)"),
            "{given}: {msg}"
        );
    }
    let msg = server_error(&format!("{}.example", "a".repeat(64)));
    assert!(msg.contains("is 64 characters long"), "{msg}");
    let msg = server_error(&["abcdefghi"; 26].join("."));
    assert!(msg.contains("it is 259 characters long"), "{msg}");
}

#[test]
fn exports_accepted() {
    for export in ["/", "/srv", "/srv/nfs/pool-1", "/srv/a:b", "/exports/été"] {
        assert_eq!(spec("nas", export, "", "").export_path(), export);
    }
    spec("nas", &format!("/{}", "a".repeat(1023)), "", "");
}

#[test]
fn exports_refused_with_reasons() {
    for (given, reason) in [
        ("", "config.nfs.export_path: is empty; use an absolute path"),
        ("srv/pool", "\"srv/pool\" is not absolute"),
        ("/srv/my pool", "contains ' '"),
        ("/srv/a\tb", "contains '\\t'"),
        ("/srv/a\u{7}", "contains '\\u{7}'"),
        ("/srv/a,b", "\"/srv/a,b\" contains a comma"),
        ("/srv/../etc", "\"/srv/../etc\" has a \"..\" component"),
        ("/srv/./pool", "has a \".\" component"),
        (
            "/srv//pool",
            "has an empty component (a doubled or trailing '/')",
        ),
        ("/srv/pool/", "has an empty component"),
    ] {
        let msg = export_error(given);
        assert!(
            msg.starts_with("config.nfs.export_path: "),
            "{given}: {msg}"
        );
        assert!(msg.contains(reason), "{given}: {msg}");
    }
    let msg = export_error(&format!("/{}", "a".repeat(1024)));
    assert!(msg.contains("is 1025 bytes long"), "{msg}");
}

#[test]
fn versions() {
    for v in ["", "3", "4", "4.0", "4.1", "4.2"] {
        assert_eq!(spec("nas", "/srv", v, "").version(), v);
    }
    for v in ["2", "4.3", "v4", " 4", "4.", "nfs4"] {
        let msg = options_error(v, "");
        assert_eq!(
            msg,
            format!(
                "config.nfs.version: {v:?} is not a supported NFS version; use one of 3, 4, 4.0, \
                 4.1, 4.2, or leave it empty to let mount negotiate the version"
            )
        );
    }
}

#[test]
fn options_accepted() {
    for opts in [
        "",
        "soft",
        "soft,timeo=100,retrans=2",
        "nconnect=4,proto=tcp6,sec=krb5p",
        "clientaddr=192.0.2.5,lookupcache=none,local_lock=flock",
        "mountaddr=fe80::1,fsc,context=system_u:object_r:nfs_t:s0",
        "ro,noatime,rsize=1048576,wsize=1048576",
    ] {
        assert_eq!(spec("nas", "/srv", "4.2", opts).options(), opts);
    }
    // Without a configured version, the options may set it.
    spec("nas", "/srv", "", "vers=4.1");
    spec("nas", "/srv", "", "nfsvers=3");
}

#[test]
fn options_refused_with_reasons() {
    for (version, given, reason) in [
        (
            "",
            ",soft",
            "\",soft\" has an empty entry (a doubled, leading or trailing comma)",
        ),
        ("", "soft,,hard", "has an empty entry"),
        ("", "soft,", "has an empty entry"),
        ("", "=4", "\"=4\" has no key before '='"),
        ("", "Soft", "key \"Soft\" contains 'S'"),
        (
            "",
            "x-systemd.automount",
            "key \"x-systemd.automount\" contains '-'",
        ),
        ("", "timeo=", "\"timeo=\" has an empty value"),
        ("", "sec=krb5 p", "the value of sec contains ' '"),
        ("", "sec=krb5;id", "the value of sec contains ';'"),
        ("", "a=b=c", "the value of a contains '='"),
        ("", "soft,timeo=1,soft", "soft is given twice"),
        ("", "bg", "bg is refused: it changes what mount does"),
        (
            "",
            "remount",
            "remount is refused: it changes what mount does",
        ),
        ("", "bind", "bind is refused: it changes what mount does"),
        (
            "",
            "helper=x",
            "helper is refused: it changes what mount does",
        ),
        (
            "4.2",
            "vers=3",
            "vers is refused: config.nfs.version sets the version",
        ),
        (
            "3",
            "nfsvers=4",
            "nfsvers is refused: config.nfs.version sets",
        ),
        (
            "4",
            "minorversion=1",
            "minorversion is refused: config.nfs.version sets",
        ),
    ] {
        let msg = options_error(version, given);
        assert!(msg.starts_with("config.nfs.options: "), "{given}: {msg}");
        assert!(msg.contains(reason), "{given}: {msg}");
        assert!(
            msg.contains("(soft,timeo=100,nconnect=4)"),
            "{given}: {msg}"
        );
    }
    let long = vec!["soft"; 206].join(",");
    assert!(options_error("", &long).contains("is 1029 bytes long"));
}

#[test]
fn mount_points() {
    for mp in ["/mnt/nfs", "/var/lib/limiquantix/pools/my pool", MP] {
        let s = NfsSpec::new("nas", "/srv", "", "", Path::new(mp)).unwrap();
        assert_eq!(s.mount_point(), Path::new(mp));
    }
    for (given, reason) in [
        ("", "\"\" is not absolute"),
        ("mnt/nfs", "\"mnt/nfs\" is not absolute"),
        (
            "/",
            "config.nfs.mount_point: is the root directory; use an absolute",
        ),
        ("/mnt/../etc", "\"/mnt/../etc\" has a '..' component"),
        (
            "/mnt/./nfs",
            "\"/mnt/./nfs\" is not normalized; write it as \"/mnt/nfs\"",
        ),
        ("/mnt//nfs", "is not normalized; write it as \"/mnt/nfs\""),
        ("/mnt/nfs/", "is not normalized; write it as \"/mnt/nfs\""),
        ("/mnt/a\nb", "contains a control character"),
    ] {
        let msg = mount_point_error(given);
        assert!(
            msg.starts_with("config.nfs.mount_point: "),
            "{given}: {msg}"
        );
        assert!(msg.contains(reason), "{given}: {msg}");
    }
    use std::os::unix::ffi::OsStrExt;
    let bad = Path::new(std::ffi::OsStr::from_bytes(b"/mnt/\xff"));
    let msg = NfsSpec::new("nas", "/srv", "", "", bad)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("is not UTF-8"), "{msg}");
}

#[test]
fn the_first_bad_field_is_reported() {
    let msg = error("nas_1", "relative", "9", "BG", "mnt");
    assert!(msg.starts_with("config.nfs.server: "), "{msg}");
    let msg = error("nas", "relative", "9", "BG", "mnt");
    assert!(msg.starts_with("config.nfs.export_path: "), "{msg}");
}

#[test]
fn sources() {
    assert_eq!(
        spec("nas.example.com", "/srv", "", "").source(),
        "nas.example.com:/srv"
    );
    assert_eq!(spec("192.0.2.10", "/", "", "").source(), "192.0.2.10:/");
    assert_eq!(
        spec("[fe80::1]", "/export", "", "").source(),
        "[fe80::1]:/export"
    );
    assert_eq!(
        spec("fe80::1", "/export", "", "").source(),
        "[fe80::1]:/export"
    );
    assert_eq!(
        spec("fe80::1%eth0", "/e", "", "").source(),
        "[fe80::1%eth0]:/e"
    );
}

#[test]
fn argv_ipv4_with_version_and_options() {
    let s = spec("192.0.2.10", "/srv/pool", "4.2", "soft,timeo=100");
    assert_eq!(
        strs(&s.mount_args()),
        [
            "-t",
            "nfs",
            "-o",
            "vers=4.2,soft,timeo=100",
            "192.0.2.10:/srv/pool",
            MP
        ]
    );
}

#[test]
fn argv_hostname_version_only() {
    let s = spec("nas.example.com", "/srv/pool", "3", "");
    assert_eq!(s.mount_options().as_deref(), Some("vers=3"));
    assert_eq!(
        strs(&s.mount_args()),
        ["-t", "nfs", "-o", "vers=3", "nas.example.com:/srv/pool", MP]
    );
}

#[test]
fn argv_ipv6_options_only() {
    let s = spec("[2001:db8::10]", "/export", "", "nconnect=4");
    assert_eq!(
        strs(&s.mount_args()),
        [
            "-t",
            "nfs",
            "-o",
            "nconnect=4",
            "[2001:db8::10]:/export",
            MP
        ]
    );
}

#[test]
fn argv_without_version_or_options_has_no_dash_o() {
    let s = spec("nas", "/srv", "", "");
    assert_eq!(s.mount_options(), None);
    assert_eq!(strs(&s.mount_args()), ["-t", "nfs", "nas:/srv", MP]);
}

#[test]
fn argv_keeps_a_mount_point_with_spaces_as_one_argument() {
    let s = NfsSpec::new("nas", "/srv", "4.1", "", Path::new("/mnt/my pool")).unwrap();
    assert_eq!(
        strs(&s.mount_args()),
        ["-t", "nfs", "-o", "vers=4.1", "nas:/srv", "/mnt/my pool"]
    );
}
