//! The process runner, its messages, and what needs no mount.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use crate::nfs::mount::{printable, run, tail};
use crate::nfs::*;

#[test]
fn printable_quotes_what_a_shell_would_read() {
    let args: Vec<OsString> = ["-t", "nfs", "[fe80::1]:/e", "/mnt/my pool", "it's", ""]
        .map(OsString::from)
        .to_vec();
    assert_eq!(
        printable(Path::new("/usr/bin/mount"), &args),
        r"/usr/bin/mount -t nfs '[fe80::1]:/e' '/mnt/my pool' 'it'\''s' ''"
    );
}

#[test]
fn tail_keeps_the_end_at_a_char_boundary() {
    assert_eq!(tail(b"  mount: failed\n"), "mount: failed");
    let long = format!("{}{}", "é".repeat(2000), "end");
    let t = tail(long.as_bytes());
    assert!(t.starts_with("...é") && t.ends_with("end"), "{t}");
    assert!(t.len() <= 2048 + 4);
}

#[tokio::test]
async fn run_kills_a_program_that_overruns() {
    let args = [OsString::from("30")];
    let started = std::time::Instant::now();
    let err = run(
        Path::new("sleep"),
        &args,
        "sleep 30",
        Duration::from_millis(200),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        err.to_string(),
        "`sleep 30` did not finish within 200ms; it was killed"
    );
}

#[tokio::test]
async fn run_reports_output_and_spawn_errors() {
    let args = ["-c", "echo out; echo err >&2; exit 3"].map(OsString::from);
    let (status, text) = run(Path::new("sh"), &args, "sh", COMMAND_TIMEOUT)
        .await
        .unwrap();
    assert_eq!((status.code(), text.as_str()), (Some(3), "err"));
    let args = ["-c", "echo only-out"].map(OsString::from);
    let (_, text) = run(Path::new("sh"), &args, "sh", COMMAND_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(text, "only-out");
    let (_, text) = run(Path::new("true"), &[], "true", COMMAND_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(text, "no output");
    let err = run(
        Path::new("/nonexistent/mount"),
        &[],
        "/nonexistent/mount",
        COMMAND_TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, NfsError::Spawn { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("cannot run `/nonexistent/mount`: "),
        "{err}"
    );
}

#[tokio::test]
async fn unmount_validates_its_path_and_is_idempotent() {
    let err = unmount(Path::new("mnt"), Path::new("umount"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("config.nfs.mount_point: \"mnt\" is not absolute")
    );
    let dir = tempfile::tempdir().unwrap();
    // Nothing mounted there: success without running the (missing) program.
    unmount(dir.path(), Path::new("/nonexistent/umount"))
        .await
        .unwrap();
}

#[test]
fn futures_are_send() {
    fn send<T: Send>(_: T) {}
    let s = NfsSpec::new("nas", "/srv", "", "", Path::new("/mnt/nfs")).unwrap();
    send(ensure_mounted(&s, Path::new("mount")));
    send(unmount(Path::new("/mnt/nfs"), Path::new("umount")));
}
