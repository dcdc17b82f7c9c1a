//! Tests of the download-job registry against real HTTP servers on 127.0.0.1: one that serves a
//! file with `Range` support, one that sends part of a file and then stalls.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;
use crate::images::tests::{TestServer, fast_http, files_in, raw_image, sha};

const WAIT: Duration = Duration::from_secs(30);

fn registry(dir: &Path, limits: JobLimits) -> DownloadJobs {
    DownloadJobs::new(dir.join("images"), fast_http(), limits)
}

fn spec(url: &str) -> JobSpec {
    JobSpec {
        image_id: "img-1".into(),
        url: url.into(),
        ..Default::default()
    }
}

fn named(url: &str, job_id: &str, name: &str) -> JobSpec {
    JobSpec {
        job_id: Some(job_id.into()),
        name: Some(name.into()),
        ..spec(url)
    }
}

/// Waits on a job's receiver until `f` holds, and returns that status.
async fn until(
    rx: &mut watch::Receiver<JobStatus>,
    f: impl FnMut(&JobStatus) -> bool,
) -> JobStatus {
    tokio::time::timeout(WAIT, rx.wait_for(f))
        .await
        .expect("the job gets there in time")
        .expect("the job's status stays readable")
        .clone()
}

async fn finished(rx: &mut watch::Receiver<JobStatus>) -> JobStatus {
    until(rx, |s| s.state.is_finished()).await
}

/// Serves `body` (announced whole) at `/stall/disk.img`, sending only its first `send` bytes,
/// then holding every connection open until the client leaves.
async fn stalling_server(body: Vec<u8>, send: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/stall/disk.img", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body[..send]).await;
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn a_job_returns_at_once_and_completes_in_the_background() {
    let data = raw_image(2 << 20);
    let server = TestServer::start(data.clone(), vec![]).await;
    let tmp = tempfile::tempdir().unwrap();
    let jobs = registry(tmp.path(), JobLimits::default());

    let mut rx = jobs
        .start(JobSpec {
            sha256: Some(sha(&data).to_uppercase()),
            ..spec(&server.url)
        })
        .await
        .unwrap();
    let first = rx.borrow_and_update().clone();
    assert_eq!(first.state, JobState::Pending);
    assert_eq!(first.name, "disk.img");
    assert_eq!(first.image_id, "img-1");
    assert!(uuid::Uuid::parse_str(&first.job_id).is_ok(), "{first:?}");

    let done = finished(&mut rx).await;
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    let images = tmp.path().join("images").canonicalize().unwrap();
    assert_eq!(
        done.path.as_deref(),
        Some(images.join("disk.img").as_path())
    );
    assert_eq!(done.bytes_done, data.len() as u64);
    assert_eq!(done.percent(), 100);
    assert_eq!(done.sha256.as_deref(), Some(sha(&data).as_str()));
    assert_eq!(std::fs::read(images.join("disk.img")).unwrap(), data);
    assert_eq!(files_in(&images), [".partial/disk.img.origin", "disk.img"]);
    assert_eq!(jobs.status(&first.job_id).unwrap(), done);
}

#[tokio::test]
async fn a_bad_checksum_fails_the_job_and_keeps_nothing() {
    let data = raw_image(1 << 20);
    let server = TestServer::start(data, vec![]).await;
    let tmp = tempfile::tempdir().unwrap();
    let jobs = registry(tmp.path(), JobLimits::default());

    let mut rx = jobs
        .start(JobSpec {
            sha256: Some(sha(b"something else")),
            ..spec(&server.url)
        })
        .await
        .unwrap();
    let done = finished(&mut rx).await;
    assert_eq!(done.state, JobState::Failed);
    let error = done.error.clone().unwrap();
    assert!(error.contains("sha256 mismatch"), "{error}");
    assert_eq!(done.path, None);
    assert!(files_in(&tmp.path().join("images")).is_empty());
    let refused = jobs.cancel(&done.job_id).await.unwrap_err();
    assert!(
        matches!(
            refused,
            JobError::Finished {
                state: JobState::Failed,
                ..
            }
        ),
        "{refused}"
    );
}

#[tokio::test]
async fn a_cancel_stops_the_transfer_and_removes_its_files() {
    let url = stalling_server(raw_image(4 << 20), 256 << 10).await;
    let tmp = tempfile::tempdir().unwrap();
    let jobs = registry(tmp.path(), JobLimits::default());

    let mut rx = jobs
        .start(named(&url, "job-1", "stalled.img"))
        .await
        .unwrap();
    // Everything the server sent shows, although the transfer stalled right after it.
    let moving = until(&mut rx, |s| s.bytes_done == 256 << 10).await;
    assert_eq!(moving.state, JobState::Downloading);
    assert_eq!(moving.bytes_total, Some(4 << 20));
    assert!(!files_in(&tmp.path().join("images")).is_empty());

    let cancelled = jobs.cancel("job-1").await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(files_in(&tmp.path().join("images")).is_empty());
    assert_eq!(jobs.status("job-1").unwrap().state, JobState::Cancelled);
    // Again: still cancelled, not an error.
    assert_eq!(
        jobs.cancel("job-1").await.unwrap().state,
        JobState::Cancelled
    );
    assert!(matches!(
        jobs.cancel("no-such-job").await,
        Err(JobError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_completed_job_cannot_be_cancelled() {
    let server = TestServer::start(raw_image(64 << 10), vec![]).await;
    let tmp = tempfile::tempdir().unwrap();
    let jobs = registry(tmp.path(), JobLimits::default());
    let mut rx = jobs.start(named(&server.url, "j", "a.img")).await.unwrap();
    assert_eq!(finished(&mut rx).await.state, JobState::Completed);
    let refused = jobs.cancel("j").await.unwrap_err();
    assert!(
        matches!(
            refused,
            JobError::Finished {
                state: JobState::Completed,
                ..
            }
        ),
        "{refused}"
    );
    assert!(tmp.path().join("images/a.img").is_file());
}

#[tokio::test]
async fn repeated_starts_conflicts_and_the_active_limit() {
    let url = stalling_server(raw_image(1 << 20), 1024).await;
    let tmp = tempfile::tempdir().unwrap();
    let limits = JobLimits {
        max_active: 2,
        ..Default::default()
    };
    let jobs = registry(tmp.path(), limits);

    let rx = jobs.start(named(&url, "j1", "one.img")).await.unwrap();
    // The same request again finds the same job.
    let again = jobs.start(named(&url, "j1", "one.img")).await.unwrap();
    assert_eq!(again.borrow().job_id, rx.borrow().job_id);
    // The same id with another request is a conflict.
    let other = jobs.start(named(&url, "j1", "two.img")).await.unwrap_err();
    assert!(matches!(other, JobError::Conflict(_)), "{other}");
    // Another job for an image in flight is refused.
    let busy = jobs.start(named(&url, "j2", "one.img")).await.unwrap_err();
    assert!(matches!(busy, JobError::NameBusy { .. }), "{busy}");
    // Two run; a third is refused.
    jobs.start(named(&url, "j2", "two.img")).await.unwrap();
    let many = jobs
        .start(named(&url, "j3", "three.img"))
        .await
        .unwrap_err();
    assert!(matches!(many, JobError::TooMany(2)), "{many}");
    // A cancelled job frees its place.
    jobs.cancel("j1").await.unwrap();
    jobs.start(named(&url, "j3", "three.img")).await.unwrap();
    for id in ["j2", "j3"] {
        jobs.cancel(id).await.unwrap();
    }
    assert!(files_in(&tmp.path().join("images")).is_empty());
}

#[tokio::test]
async fn bad_requests_are_refused_before_a_job_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(images.join("taken.img"), raw_image(4096)).unwrap();
    let jobs = registry(tmp.path(), JobLimits::default());
    let url = "http://127.0.0.1:9/x/disk.img";

    for bad in ["", "a/b", "a b", &"x".repeat(65)] {
        let e = jobs.start(named(url, bad, "d.img")).await.unwrap_err();
        assert!(matches!(e, JobError::InvalidId(_)), "{bad:?}: {e}");
    }
    for bad in ["ftp://h/disk.img", "/srv/disk.img", "http://"] {
        let e = jobs.start(spec(bad)).await.unwrap_err();
        assert!(
            matches!(e, JobError::Image(ImageError::InvalidSource { .. })),
            "{bad:?}: {e}"
        );
    }
    let e = jobs.start(named(url, "j", "../etc")).await.unwrap_err();
    assert!(
        matches!(e, JobError::Image(ImageError::InvalidName { .. })),
        "{e}"
    );
    let e = jobs.start(spec("http://127.0.0.1:9/")).await.unwrap_err();
    assert!(
        matches!(e, JobError::Image(ImageError::NoName { .. })),
        "{e}"
    );
    let e = jobs
        .start(JobSpec {
            sha256: Some("abc".into()),
            ..spec(url)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, JobError::Image(ImageError::InvalidChecksum(_))),
        "{e}"
    );
    let e = jobs.start(named(url, "j", "taken")).await.unwrap_err();
    assert!(
        matches!(e, JobError::Image(ImageError::AlreadyExists(_))),
        "{e}"
    );
    assert!(matches!(jobs.status("j"), Err(JobError::NotFound(_))));
}

#[tokio::test]
async fn finished_jobs_are_forgotten_by_age_and_by_count() {
    let server = TestServer::start(raw_image(64 << 10), vec![]).await;
    let tmp = tempfile::tempdir().unwrap();
    let limits = JobLimits {
        max_finished: 1,
        ..Default::default()
    };
    let jobs = registry(tmp.path(), limits);
    for (id, name) in [("first", "a.img"), ("second", "b.img")] {
        let mut rx = jobs.start(named(&server.url, id, name)).await.unwrap();
        assert_eq!(finished(&mut rx).await.state, JobState::Completed);
    }
    assert!(matches!(jobs.status("first"), Err(JobError::NotFound(_))));
    assert_eq!(jobs.status("second").unwrap().state, JobState::Completed);

    let limits = JobLimits {
        keep_finished: Duration::ZERO,
        ..Default::default()
    };
    let jobs = registry(tmp.path(), limits);
    let mut rx = jobs
        .start(named(&server.url, "brief", "c.img"))
        .await
        .unwrap();
    assert_eq!(finished(&mut rx).await.state, JobState::Completed);
    assert!(matches!(jobs.status("brief"), Err(JobError::NotFound(_))));
}

#[test]
fn percent_and_eta() {
    let mut s = JobStatus {
        job_id: "j".into(),
        image_id: String::new(),
        name: "n".into(),
        state: JobState::Downloading,
        bytes_done: 250,
        bytes_total: None,
        bytes_per_sec: 50,
        path: None,
        sha256: None,
        error: None,
    };
    assert_eq!((s.percent(), s.eta_secs()), (0, None));
    s.bytes_total = Some(1000);
    assert_eq!((s.percent(), s.eta_secs()), (25, Some(15)));
    s.bytes_per_sec = 0;
    assert_eq!(s.eta_secs(), None);
    s.state = JobState::Completed;
    assert_eq!(s.percent(), 100);
}
