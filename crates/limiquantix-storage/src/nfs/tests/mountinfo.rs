//! Mountinfo parsing.

use std::path::{Path, PathBuf};

use crate::nfs::*;

/// Shaped like a real host's table: optional fields, NFS super options, escapes, an overmount.
const SAMPLE: &str = r"22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
23 1 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw
25 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
61 25 0:45 / /mnt/pools/nfs1 rw,relatime shared:210 - nfs4 nas.example.com:/srv/pool rw,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=192.0.2.5,local_lock=none,addr=192.0.2.10
62 25 0:46 / /mnt/my\040share rw,relatime shared:211 - nfs 192.0.2.10:/export/a\040b rw,vers=3,rsize=65536,wsize=65536,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,mountaddr=192.0.2.10,mountvers=3,mountport=20048,mountproto=udp,local_lock=none,addr=192.0.2.10
63 25 0:47 / /mnt/v6 rw,relatime shared:212 master:3 - nfs4 [fe80::1%eth0]:/export rw,vers=4.1,addr=fe80::1
this line is not mountinfo
64 61 0:48 / /mnt/pools/nfs1 rw,relatime shared:213 - tmpfs other rw,size=1024k
65 25 0:49 / /mnt/tab\011new\012line\134back\x rw - tmpfs none rw
66 25 0:50 /sub /mnt/noopt rw,nosuid - tmpfs tmpfs rw
67 25 0:51 / /mnt/nofstype rw -  tmpfs rw
";

#[test]
fn mountinfo_sample() {
    let entries = parse_mountinfo(SAMPLE);
    let points: Vec<&Path> = entries.iter().map(|e| e.mount_point.as_path()).collect();
    assert_eq!(
        points,
        [
            "/sys",
            "/proc",
            "/",
            "/mnt/pools/nfs1",
            "/mnt/my share",
            "/mnt/v6",
            "/mnt/pools/nfs1",
            "/mnt/tab\tnew\nline\\back\\x",
            "/mnt/noopt",
        ]
        .map(Path::new)
    );
    let nfs = &entries[3];
    assert_eq!(nfs.fstype, "nfs4");
    assert_eq!(nfs.source, "nas.example.com:/srv/pool");
    assert_eq!(nfs.options, "rw,relatime");
    assert!(nfs.super_options.starts_with("rw,vers=4.2,rsize=1048576"));
    assert_eq!(entries[4].fstype, "nfs");
    assert_eq!(entries[4].source, "192.0.2.10:/export/a b");
    assert_eq!(entries[5].source, "[fe80::1%eth0]:/export");
    assert_eq!(entries[6].fstype, "tmpfs");
    assert_eq!(entries[8].source, "tmpfs");
    // The malformed line and the one without a filesystem type are skipped.
    assert_eq!(entries.len(), 9);
}

#[test]
fn find_mount_returns_the_topmost() {
    let entries = parse_mountinfo(SAMPLE);
    let top = find_mount(&entries, Path::new("/mnt/pools/nfs1")).unwrap();
    assert_eq!(
        (top.fstype.as_str(), top.source.as_str()),
        ("tmpfs", "other")
    );
    let spaced = find_mount(&entries, Path::new("/mnt/my share")).unwrap();
    assert_eq!(spaced.source, "192.0.2.10:/export/a b");
    assert!(find_mount(&entries, Path::new("/mnt/pools")).is_none());
    assert!(
        find_mount(&entries, Path::new("/mnt/v6/")).is_none(),
        "byte for byte"
    );
    assert!(find_mount(&[], Path::new("/")).is_none());
}

#[test]
fn mountinfo_escapes_outside_a_byte_and_short_ones_are_kept() {
    let e = parse_mountinfo("1 0 0:1 / /a\\400b\\04 rw - tmpfs s\\134 rw\n");
    assert_eq!(e[0].mount_point, PathBuf::from("/a\\400b\\04"));
    assert_eq!(e[0].source, "s\\");
}

#[test]
fn this_hosts_mountinfo_reads() {
    let entries = read_mountinfo().unwrap();
    assert!(
        find_mount(&entries, Path::new("/")).is_some(),
        "{entries:?}"
    );
}
