//! NFS mounts on this host, with the real `mount` and `umount`.
//!
//! The kernel here has no NFS client, so a share is stood in for by a tmpfs mounted with an
//! NFS-looking source (`mount -t tmpfs nfs.example.test:/srv/share DIR`): the mount table shows
//! that source, which is what identifies a share. Tests that mount need root and print a note and
//! pass without it. Every mount is made under a scratch directory whose guard unmounts all that
//! is mounted under it when dropped, also when a test fails. The tests run one at a time (they
//! write and run scripts, and share the mount table).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use limiquantix_storage::nfs::{
    MountOutcome, NfsError, NfsSpec, ensure_mounted, find_mount, read_mountinfo, unmount,
};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SHARE: &str = "nfs.example.test:/srv/share";

/// Whether this process runs as root (the effective uid on the `Uid:` line of
/// `/proc/self/status`); prints a note when not.
fn root(test: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned));
    let is_root = euid.as_deref() == Some("0");
    if !is_root {
        eprintln!("{test}: skipped, it mounts tmpfs and needs root");
    }
    is_root
}

/// A scratch directory (symlinks resolved, as the mount table shows paths) that unmounts
/// everything mounted under it when dropped, before the directory itself is removed.
struct Scratch {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().canonicalize().unwrap();
        Self { dir, path }
    }

    /// `name` under the scratch directory, created as a directory.
    fn dir(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// An executable `sh` script `name` under the scratch directory.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.dir("bin").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn mounted_under(&self) -> Vec<PathBuf> {
        let entries = read_mountinfo().unwrap();
        let mut points: Vec<PathBuf> = entries
            .into_iter()
            .map(|e| e.mount_point)
            .filter(|p| p.starts_with(&self.path))
            .collect();
        points.reverse();
        points
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for _ in 0..10 {
            let points = self.mounted_under();
            if points.is_empty() {
                return;
            }
            for p in points {
                let ok = Command::new("umount")
                    .arg(&p)
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    let _ = Command::new("umount").arg("-l").arg(&p).status();
                }
            }
        }
        eprintln!("mounts left under {}", self.dir.path().display());
    }
}

fn tmpfs(source: &str, target: &Path) {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", source])
        .arg(target)
        .output()
        .unwrap();
    assert!(out.status.success(), "mount -t tmpfs {source}: {out:?}");
}

/// Source and filesystem type of every mount at `mount_point`, bottom to top.
fn mounts_at(mount_point: &Path) -> Vec<(String, String)> {
    read_mountinfo()
        .unwrap()
        .into_iter()
        .filter(|e| e.mount_point == mount_point)
        .map(|e| (e.source, e.fstype))
        .collect()
}

fn spec(export: &str, version: &str, options: &str, mount_point: &Path) -> NfsSpec {
    NfsSpec::new("nfs.example.test", export, version, options, mount_point).unwrap()
}

/// Owner has everything, others nothing, group at most read and search: 0750 under any umask.
fn assert_mount_point_mode(p: &Path) {
    let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert!(mode & 0o700 == 0o700 && mode & 0o027 == 0, "{mode:o}");
}

#[tokio::test]
async fn adopts_a_mount_whose_source_is_the_share() {
    let _serial = SERIAL.lock().await;
    if !root("adopts_a_mount_whose_source_is_the_share") {
        return;
    }
    let scratch = Scratch::new();
    let mp = scratch.dir("pool");
    tmpfs(SHARE, &mp);
    let s = spec("/srv/share", "4.2", "", &mp);
    // Adopting runs nothing: the program does not even exist.
    let outcome = ensure_mounted(&s, Path::new("/nonexistent/mount")).await;
    assert_eq!(outcome.unwrap(), MountOutcome::Adopted);
    let entries = read_mountinfo().unwrap();
    let found = find_mount(&entries, &mp).unwrap();
    assert_eq!(
        (found.source.as_str(), found.fstype.as_str()),
        (SHARE, "tmpfs")
    );
    assert_eq!(found.source, s.source());
}

#[tokio::test]
async fn refuses_another_export_and_changes_nothing() {
    let _serial = SERIAL.lock().await;
    if !root("refuses_another_export_and_changes_nothing") {
        return;
    }
    let scratch = Scratch::new();
    let mp = scratch.dir("pool");
    tmpfs(SHARE, &mp);
    let before = mounts_at(&mp);
    let s = spec("/srv/other", "", "", &mp);
    let err = ensure_mounted(&s, Path::new("mount")).await.unwrap_err();
    match &err {
        NfsError::WrongMount {
            mount_point,
            found_source,
            found_fstype,
            expected,
        } => {
            assert_eq!(mount_point, &mp);
            assert_eq!(found_source, SHARE);
            assert_eq!(found_fstype, "tmpfs");
            assert_eq!(expected, "nfs.example.test:/srv/other");
        }
        other => panic!("{other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("already has nfs.example.test:/srv/share (tmpfs) mounted"),
        "{msg}"
    );
    assert_eq!(mounts_at(&mp), before);
    assert_eq!(before, [(SHARE.to_owned(), "tmpfs".to_owned())]);
}

#[tokio::test]
async fn a_real_nfs_mount_fails_with_the_error_output_of_mount() {
    let _serial = SERIAL.lock().await;
    let scratch = Scratch::new();
    // Not there yet: ensure_mounted makes it (and its parents).
    let mp = scratch.path.join("pools/nested/pool");
    // .invalid never resolves, so this fails also where the kernel has an NFS client.
    let s = NfsSpec::new("nfs.example.invalid", "/srv/share", "4.2", "retry=0", &mp).unwrap();
    let err = ensure_mounted(&s, Path::new("mount")).await.unwrap_err();
    let NfsError::MountFailed {
        command,
        status,
        output,
    } = &err
    else {
        panic!("{err}");
    };
    let expected = format!(
        "mount -t nfs -o vers=4.2,retry=0 nfs.example.invalid:/srv/share {}",
        mp.display()
    );
    assert_eq!(command, &expected);
    assert!(!status.is_empty() && !output.is_empty(), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("`{expected}` failed (")), "{msg}");
    assert!(msg.ends_with(output.as_str()), "{msg}");
    eprintln!("{msg}");
    assert!(mounts_at(&mp).is_empty());
    assert_mount_point_mode(&mp);
}

#[tokio::test]
async fn unmounts_with_the_real_umount() {
    let _serial = SERIAL.lock().await;
    if !root("unmounts_with_the_real_umount") {
        return;
    }
    let scratch = Scratch::new();
    let mp = scratch.dir("pool");
    tmpfs(SHARE, &mp);
    unmount(&mp, Path::new("umount")).await.unwrap();
    assert!(find_mount(&read_mountinfo().unwrap(), &mp).is_none());
    // Again: nothing mounted is success.
    unmount(&mp, Path::new("umount")).await.unwrap();
}

#[tokio::test]
async fn unmounting_a_stacked_mount_reports_what_is_left() {
    let _serial = SERIAL.lock().await;
    if !root("unmounting_a_stacked_mount_reports_what_is_left") {
        return;
    }
    let scratch = Scratch::new();
    let mp = scratch.dir("pool");
    tmpfs("below:/srv/a", &mp);
    tmpfs(SHARE, &mp);
    let err = unmount(&mp, Path::new("umount")).await.unwrap_err();
    assert!(
        matches!(&err, NfsError::StillMountedAfter { found_source, .. } if found_source == "below:/srv/a"),
        "{err}"
    );
    assert_eq!(
        mounts_at(&mp),
        [("below:/srv/a".to_owned(), "tmpfs".to_owned())]
    );
}

#[tokio::test]
async fn a_failing_umount_leaves_the_mount_and_reports_its_output() {
    let _serial = SERIAL.lock().await;
    if !root("a_failing_umount_leaves_the_mount_and_reports_its_output") {
        return;
    }
    let scratch = Scratch::new();
    let mp = scratch.dir("pool");
    tmpfs(SHARE, &mp);
    let umount = scratch.script(
        "umount",
        "echo \"umount: $1: target is busy.\" >&2; exit 32",
    );
    let err = unmount(&mp, &umount).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, NfsError::UnmountFailed { .. }), "{msg}");
    let expected = format!(
        "`{} {}` failed (exit status: 32): umount: {}: target is busy.",
        umount.display(),
        mp.display(),
        mp.display()
    );
    assert_eq!(msg, expected);
    assert_eq!(mounts_at(&mp), [(SHARE.to_owned(), "tmpfs".to_owned())]);
}

#[tokio::test]
async fn a_fake_mount_program_gets_the_built_argv_and_the_result_is_checked() {
    let _serial = SERIAL.lock().await;
    if !root("a_fake_mount_program_gets_the_built_argv_and_the_result_is_checked") {
        return;
    }
    let scratch = Scratch::new();
    let record = scratch.path.join("argv");
    let mount = scratch.script(
        "mount",
        &format!(
            "printf '%s\\n' \"$@\" > '{}'\nwhile [ $# -gt 2 ]; do shift; done\n\
             exec mount -t tmpfs \"$1\" \"$2\"",
            record.display()
        ),
    );
    let mp = scratch.path.join("mnt/pool");
    let s = spec("/srv/fake", "4.2", "soft,timeo=100", &mp);
    let outcome = ensure_mounted(&s, &mount).await.unwrap();
    assert_eq!(outcome, MountOutcome::Mounted);
    let argv = std::fs::read_to_string(&record).unwrap();
    let built: Vec<String> = s
        .mount_args()
        .iter()
        .map(|a| a.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(argv.lines().collect::<Vec<_>>(), built);
    assert_eq!(
        built,
        [
            "-t",
            "nfs",
            "-o",
            "vers=4.2,soft,timeo=100",
            "nfs.example.test:/srv/fake"
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([mp.display().to_string()])
        .collect::<Vec<_>>()
    );
    assert_eq!(
        mounts_at(&mp),
        [("nfs.example.test:/srv/fake".to_owned(), "tmpfs".to_owned())]
    );
    // The tmpfs covers the mount point's own mode; its parent was made with it.
    assert_mount_point_mode(mp.parent().unwrap());
    // A second call adopts the mount and does not run the program again.
    std::fs::remove_file(&record).unwrap();
    assert_eq!(
        ensure_mounted(&s, &mount).await.unwrap(),
        MountOutcome::Adopted
    );
    assert!(!record.exists());
    assert_eq!(mounts_at(&mp).len(), 1);
}

#[tokio::test]
async fn a_mount_program_that_mounts_nothing_is_caught() {
    let _serial = SERIAL.lock().await;
    let scratch = Scratch::new();
    let mount = scratch.script("mount", "exit 0");
    let mp = scratch.path.join("pool");
    let err = ensure_mounted(&spec("/srv/share", "", "", &mp), &mount)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, NfsError::NotMountedAfter { found_source: None, expected, .. } if expected == SHARE),
        "{err}"
    );
    let msg = err.to_string();
    let tail = format!("then had nothing mounted instead of {SHARE}");
    assert!(msg.ends_with(&tail), "{msg}");
}

#[tokio::test]
async fn a_failing_mount_program_reports_its_status_and_error_output() {
    let _serial = SERIAL.lock().await;
    let scratch = Scratch::new();
    let mount = scratch.script(
        "mount",
        "echo 'progress on stdout'\necho 'mount.nfs: access denied by server' >&2\nexit 32",
    );
    let mp = scratch.path.join("pool");
    let err = ensure_mounted(&spec("/srv/share", "3", "", &mp), &mount)
        .await
        .unwrap_err();
    let expected = format!(
        "`{} -t nfs -o vers=3 {SHARE} {}` failed (exit status: 32): \
         mount.nfs: access denied by server",
        mount.display(),
        mp.display()
    );
    assert!(matches!(err, NfsError::MountFailed { .. }), "{err}");
    assert_eq!(err.to_string(), expected);
}

#[tokio::test]
async fn a_mount_point_through_a_symlink_is_refused_before_mounting() {
    let _serial = SERIAL.lock().await;
    let scratch = Scratch::new();
    let real = scratch.dir("real");
    let link = scratch.path.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mp = link.join("pool");
    let err = ensure_mounted(
        &spec("/srv/share", "", "", &mp),
        Path::new("/nonexistent/mount"),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("config.nfs.mount_point: "), "{msg}");
    assert!(msg.contains("leads through a symlink"), "{msg}");
    // Nothing was created through the symlink.
    assert!(!real.join("pool").exists());
    // A file where the mount point should be is refused too.
    let file = scratch.path.join("file");
    std::fs::write(&file, b"").unwrap();
    let err = ensure_mounted(
        &spec("/srv/share", "", "", &file),
        Path::new("/nonexistent/mount"),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("is not a directory"), "{err}");
}
