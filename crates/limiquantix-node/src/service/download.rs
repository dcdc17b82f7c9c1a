//! DownloadImage, GetDownloadStatus, CancelDownload: image downloads as background jobs of the
//! image library ([`crate::images::jobs`]).
//!
//! DownloadImage checks the request, starts the job and sends its first message (the job id,
//! `STATUS_PENDING`) at once; further messages follow as the job moves, up to the one that ends
//! it. Closing the stream leaves the job running; CancelDownload stops it and returns once its
//! partial files are gone. `target_dir` may only name the images directory (empty means the
//! same): this node writes downloads nowhere else.

use super::core::{BoxStream, NodeService};
use crate::confine::check_is_dir;
use crate::error::ApiError;
use crate::images::jobs::{JobSpec, JobState, JobStatus};
use crate::images::{derive_name, validate_name};
use limiquantix_proto::v1 as pb;
use limiquantix_proto::v1::download_progress::Status as WireState;
use limiquantix_vm::VmBackend;
use std::path::Path;
use tokio::sync::watch;

impl<B: VmBackend> NodeService<B> {
    /// Starts a download job and streams its progress.
    pub(super) async fn download_image(
        &self,
        request: pb::DownloadImageOnNodeRequest,
    ) -> Result<BoxStream<pb::DownloadProgress>, ApiError> {
        let images_dir = self.inner.config.images_dir.clone();
        let spec = tokio::task::spawn_blocking(move || job_spec(request, &images_dir)).await??;
        let rx = self.inner.downloads.start(spec).await?;
        Ok(progress_stream(rx, self.inner.shutdown.subscribe()))
    }

    /// A job's progress now.
    pub(super) fn download_status(&self, job_id: &str) -> Result<pb::DownloadProgress, ApiError> {
        let status = self.inner.downloads.status(job_id)?;
        Ok(progress(&status))
    }

    /// Stops a job; its partial files are gone when this returns.
    pub(super) async fn cancel_download(&self, job_id: &str) -> Result<(), ApiError> {
        self.inner.downloads.cancel(job_id).await?;
        Ok(())
    }
}

/// The job a request asks for, its fields checked (errors name them). Resolves `target_dir` on
/// the filesystem: call from blocking context.
fn job_spec(r: pb::DownloadImageOnNodeRequest, images_dir: &Path) -> Result<JobSpec, ApiError> {
    let lower = r.url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(ApiError::invalid(
            "url",
            format!("{:?} is not an http:// or https:// URL", r.url),
        ));
    }
    if !r.target_dir.is_empty() {
        check_is_dir("target_dir", &r.target_dir, images_dir)?;
    }
    let name = if r.filename.is_empty() {
        derive_name(&r.url).map_err(|e| ApiError::invalid("filename", e.to_string()))?
    } else {
        r.filename
    };
    validate_name(&name).map_err(|e| ApiError::invalid("filename", e.to_string()))?;
    let sha256 = match (
        r.checksum.trim(),
        r.checksum_type.trim().to_ascii_lowercase(),
    ) {
        ("", _) => None,
        (sum, t) if t.is_empty() || t == "sha256" || t == "sha-256" => Some(sum.to_owned()),
        (_, t) => {
            return Err(ApiError::invalid(
                "checksum_type",
                format!("{t:?} is not supported: this node verifies sha256 only"),
            ));
        }
    };
    Ok(JobSpec {
        job_id: (!r.job_id.is_empty()).then_some(r.job_id),
        image_id: r.image_id,
        url: r.url,
        name: Some(name),
        sha256,
    })
}

/// The wire form of a job's status.
pub(super) fn progress(s: &JobStatus) -> pb::DownloadProgress {
    let status = match s.state {
        JobState::Pending => WireState::Pending,
        JobState::Downloading => WireState::Downloading,
        JobState::Verifying => WireState::Verifying,
        JobState::Completed => WireState::Completed,
        JobState::Failed => WireState::Failed,
        JobState::Cancelled => WireState::Cancelled,
    };
    pb::DownloadProgress {
        job_id: s.job_id.clone(),
        image_id: s.image_id.clone(),
        status: status as i32,
        progress_percent: s.percent(),
        bytes_downloaded: s.bytes_done,
        bytes_total: s.bytes_total.unwrap_or(0),
        download_speed: s.bytes_per_sec,
        eta_seconds: s
            .eta_secs()
            .map_or(0, |e| u32::try_from(e).unwrap_or(u32::MAX)),
        path: s
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        error: s.error.clone().unwrap_or_default(),
    }
}

/// The stream of a job's progress: the status now, then every change, up to the end of the job,
/// the daemon's shutdown or the client's leaving (none of which stops the job).
fn progress_stream(
    mut rx: watch::Receiver<JobStatus>,
    mut shutdown: watch::Receiver<bool>,
) -> BoxStream<pb::DownloadProgress> {
    let (tx, out) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut last = rx.borrow_and_update().clone();
        if tx.send(Ok(progress(&last))).await.is_err() {
            return;
        }
        while !last.state.is_finished() {
            let closed = tokio::select! {
                changed = rx.changed() => changed.is_err(),
                _ = shutdown.wait_for(|s| *s) => return,
                () = tx.closed() => return,
            };
            let now = rx.borrow_and_update().clone();
            if now != last && tx.send(Ok(progress(&now))).await.is_err() {
                return;
            }
            last = now;
            if closed {
                return;
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> pb::DownloadImageOnNodeRequest {
        pb::DownloadImageOnNodeRequest {
            url: url.into(),
            ..Default::default()
        }
    }

    #[test]
    fn requests_map_to_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir_all(images.join("sub")).unwrap();
        let spec = job_spec(
            pb::DownloadImageOnNodeRequest {
                job_id: "j-1".into(),
                image_id: "cp-image".into(),
                target_dir: images.display().to_string(),
                checksum: "AB".repeat(32),
                checksum_type: "SHA256".into(),
                ..request("https://example.com/noble.img?sig=1")
            },
            &images,
        )
        .unwrap();
        assert_eq!(spec.job_id.as_deref(), Some("j-1"));
        assert_eq!(spec.name.as_deref(), Some("noble.img"));
        assert_eq!(spec.image_id, "cp-image");
        assert_eq!(spec.sha256, Some("AB".repeat(32)));

        let spec = job_spec(request("http://h/x/disk.qcow2"), &images).unwrap();
        assert_eq!((spec.job_id, spec.sha256), (None, None));

        let code = |r| job_spec(r, &images).unwrap_err().code();
        use tonic::Code;
        assert_eq!(code(request("file:///etc/passwd")), Code::InvalidArgument);
        assert_eq!(code(request("http://h/")), Code::InvalidArgument);
        let named = |f: &str| pb::DownloadImageOnNodeRequest {
            filename: f.into(),
            ..request("http://h/x")
        };
        assert_eq!(code(named("../escape")), Code::InvalidArgument);
        assert_eq!(code(named(".hidden")), Code::InvalidArgument);
        let typed = pb::DownloadImageOnNodeRequest {
            checksum: "00".repeat(32),
            checksum_type: "md5".into(),
            ..request("http://h/x.img")
        };
        let e = job_spec(typed, &images).unwrap_err();
        assert!(e.to_string().starts_with("checksum_type:"), "{e}");
        let target = |t: &str| pb::DownloadImageOnNodeRequest {
            target_dir: t.into(),
            ..request("http://h/x.img")
        };
        assert_eq!(code(target("/etc")), Code::PermissionDenied);
        assert_eq!(code(target("/nonexistent/dir")), Code::PermissionDenied);
        let sub = images.join("sub").display().to_string();
        assert_eq!(code(target(&sub)), Code::InvalidArgument);
        assert_eq!(code(target("relative/dir")), Code::InvalidArgument);
        let dotdot = format!("{}/sub/..", images.display());
        assert_eq!(code(target(&dotdot)), Code::InvalidArgument);
    }

    #[test]
    fn states_and_figures_on_the_wire() {
        let mut s = JobStatus {
            job_id: "j".into(),
            image_id: "i".into(),
            name: "n.img".into(),
            state: JobState::Downloading,
            bytes_done: 50,
            bytes_total: Some(200),
            bytes_per_sec: 10,
            path: None,
            sha256: None,
            error: None,
        };
        let p = progress(&s);
        assert_eq!(p.status(), WireState::Downloading);
        assert_eq!((p.progress_percent, p.eta_seconds), (25, 15));
        assert_eq!((p.bytes_downloaded, p.bytes_total), (50, 200));
        s.state = JobState::Failed;
        s.error = Some("boom".into());
        let p = progress(&s);
        assert_eq!((p.status(), p.error.as_str()), (WireState::Failed, "boom"));
        assert_eq!(p.eta_seconds, 0);
    }
}
