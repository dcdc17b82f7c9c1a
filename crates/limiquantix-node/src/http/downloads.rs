//! The control plane's cloud-image downloads (`POST /api/v1/images/download`, `GET
//! …/download/{jobId}`) over the image library's download jobs ([`DownloadJobs`]: resumable
//! transfer, sha256, nothing visible before every check passed), one registry per target
//! directory. `targetDir` must be a pool's directory or a directory below one (missing
//! directories below the pool are made); anything else is refused.
//!
//! Every job is recorded in `<state>/http/downloads.json`; after a daemon restart an unfinished
//! job is started again under its id (the transfer resumes from its partial file) and a
//! finished one keeps answering with its final state.

use super::record::{Jobs, Record};
use crate::images::jobs::{DownloadJobs, JobError, JobLimits, JobSpec, JobState, JobStatus};
use crate::images::{HttpOptions, ImageLibrary, derive_name, validate_name};
use crate::pools::PoolRegistry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The control plane's request body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadRequest {
    /// The catalog entry.
    #[serde(default)]
    pub catalog_id: String,
    /// The control plane's image id.
    #[serde(default)]
    pub image_id: String,
    /// `http(s)://` URL.
    pub url: String,
    /// `<pool dir>/cloud-images`.
    pub target_dir: String,
    /// The control plane's pool id.
    #[serde(default)]
    pub pool_id: String,
    /// sha256 (hex, optional `sha256:` prefix) or empty.
    #[serde(default)]
    pub checksum: String,
}

/// A job as recorded (and answered).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    /// The job's id.
    pub job_id: String,
    /// The control plane's image id.
    pub image_id: String,
    /// The catalog entry.
    pub catalog_id: String,
    /// The URL.
    pub url: String,
    /// Where the image is once completed.
    pub target_path: String,
    /// The control plane's pool id.
    pub pool_id: String,
    /// `downloading`, `completed` or `failed`.
    pub status: String,
    /// 0-100.
    pub progress_percent: u32,
    /// Bytes received.
    pub bytes_downloaded: u64,
    /// Size (0 while unknown).
    pub bytes_total: u64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_message: Option<String>,
    /// RFC 3339, once finished.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub completed_at: Option<String>,
    /// The expected sha256 (recorded to restart the job; not answered).
    #[serde(skip)]
    pub checksum: String,
    /// The target directory (recorded to restart the job; not answered).
    #[serde(skip)]
    pub target_dir: String,
}

/// Why a download request is refused.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// A field is wrong.
    #[error("{field}: {problem}")]
    Invalid {
        /// The JSON field.
        field: &'static str,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// No such job.
    #[error("no download job {0}")]
    NotFound(String),
    /// The job registry refused.
    #[error(transparent)]
    Job(#[from] JobError),
}

/// The downloads of the HTTP face.
#[derive(Clone)]
pub struct HttpDownloads {
    pools: Arc<PoolRegistry>,
    record: Arc<Record>,
    registries: Arc<Mutex<BTreeMap<PathBuf, DownloadJobs>>>,
    jobs: Jobs,
}

fn bad(field: &'static str, problem: impl Into<String>) -> DownloadError {
    DownloadError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// `dir` (absolute, no `..`) resolved inside a pool: the pool's canonical directory joined with
/// the rest, made when missing. Blocking.
pub fn confine_target(pools: &PoolRegistry, dir: &str) -> Result<PathBuf, DownloadError> {
    let path = Path::new(dir);
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(bad(
            "targetDir",
            format!("{dir:?} is not an absolute path without `..`"),
        ));
    }
    for pool_dir in pools.dirs().values() {
        let Ok(rest) = path.strip_prefix(pool_dir) else {
            continue;
        };
        let Ok(root) = pool_dir.canonicalize() else {
            continue;
        };
        let mut target = root.clone();
        for c in rest.components() {
            target.push(c);
            match std::fs::symlink_metadata(&target) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(bad(
                        "targetDir",
                        format!("{dir:?} goes through a symbolic link"),
                    ));
                }
                Ok(m) if !m.is_dir() => {
                    return Err(bad("targetDir", format!("{dir:?} is not a directory")));
                }
                Ok(_) => {}
                Err(_) => std::fs::create_dir(&target)
                    .map_err(|e| bad("targetDir", format!("cannot create {dir:?}: {e}")))?,
            }
        }
        return Ok(target);
    }
    Err(bad(
        "targetDir",
        format!("{dir:?} is not inside a storage pool of this node (downloads go into pools only)"),
    ))
}

impl HttpDownloads {
    /// Opens the record in `<state>/http/` and starts its unfinished jobs again. Blocking
    /// parts run on the blocking pool.
    pub async fn open(state_dir: &Path, pools: Arc<PoolRegistry>) -> Self {
        let record = Arc::new(Record::new(state_dir));
        let r = record.clone();
        let jobs = tokio::task::spawn_blocking(move || r.load())
            .await
            .unwrap_or_default();
        let this = HttpDownloads {
            pools,
            record,
            registries: Arc::default(),
            jobs: Arc::new(Mutex::new(jobs.clone())),
        };
        for job in jobs.into_values().filter(|j| j.status == "downloading") {
            let req = DownloadRequest {
                catalog_id: job.catalog_id.clone(),
                image_id: job.image_id.clone(),
                url: job.url.clone(),
                target_dir: job.target_dir.clone(),
                pool_id: job.pool_id.clone(),
                checksum: job.checksum.clone(),
            };
            if let Some(done) = this.published(&job).await {
                tracing::info!(job_id = %job.job_id, status = %done.status, "download job found its image in place after a restart");
                let _ = this.put(done).await;
                continue;
            }
            tracing::info!(job_id = %job.job_id, "download job resumed after a restart");
            if let Err(e) = this.start_with_id(req, Some(job.job_id.clone())).await {
                let mut failed = job;
                failed.status = "failed".into();
                failed.error_message = Some(format!("could not resume after a restart: {e}"));
                failed.completed_at = Some(rfc3339_now());
                drop(this.put(failed));
            }
        }
        this
    }

    /// A `downloading` job whose image is already at its target (the daemon died after the
    /// image was published, before the job's end was recorded): the job completed when the
    /// image is verified (its sha256 when the job has one, else the library's record that this
    /// URL published it), failed saying why otherwise; `None` when the image is not there.
    async fn published(&self, job: &JobView) -> Option<JobView> {
        let (pools, j) = (self.pools.clone(), job.clone());
        let checked = tokio::task::spawn_blocking(move || {
            let dir = confine_target(&pools, &j.target_dir).ok()?;
            let name = derive_name(&j.url).ok()?;
            std::fs::symlink_metadata(dir.join(&name)).ok()?;
            let sha256 = Some(j.checksum.trim()).filter(|s| !s.is_empty());
            Some(
                ImageLibrary::open(&dir)
                    .and_then(|lib| lib.verify_published(&name, &j.url, sha256)),
            )
        })
        .await
        .ok()
        .flatten()?;
        let mut view = job.clone();
        match checked {
            Ok(o) => {
                view.status = "completed".into();
                view.progress_percent = 100;
                (view.bytes_downloaded, view.bytes_total) =
                    (o.image.size_bytes, o.image.size_bytes);
                view.target_path = o.image.path.display().to_string();
                view.error_message = None;
            }
            Err(e) => {
                view.status = "failed".into();
                view.error_message = Some(format!("could not resume after a restart: {e}"));
            }
        }
        view.completed_at = Some(rfc3339_now());
        Some(view)
    }

    /// Starts a job.
    pub async fn start(&self, req: DownloadRequest) -> Result<JobView, DownloadError> {
        self.start_with_id(req, None).await
    }

    async fn start_with_id(
        &self,
        req: DownloadRequest,
        job_id: Option<String>,
    ) -> Result<JobView, DownloadError> {
        let lower = req.url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(bad(
                "url",
                format!("{:?} is not an http:// or https:// URL", req.url),
            ));
        }
        let name = derive_name(&req.url).map_err(|e| bad("url", e.to_string()))?;
        validate_name(&name).map_err(|e| bad("url", e.to_string()))?;
        let sha256 = Some(req.checksum.trim().to_string()).filter(|s| !s.is_empty());
        let (pools, dir) = (self.pools.clone(), req.target_dir.clone());
        let target = tokio::task::spawn_blocking(move || confine_target(&pools, &dir))
            .await
            .map_err(|e| bad("targetDir", e.to_string()))??;
        let spec = JobSpec {
            job_id,
            image_id: req.image_id.clone(),
            url: req.url.clone(),
            name: Some(name.clone()),
            sha256,
        };
        let mut rx = self.registry(&target).start(spec).await?;
        let first = rx.borrow_and_update().clone();
        let view = JobView {
            job_id: first.job_id.clone(),
            image_id: req.image_id,
            catalog_id: req.catalog_id,
            url: req.url,
            target_path: target.join(&name).display().to_string(),
            pool_id: req.pool_id,
            status: "downloading".into(),
            checksum: req.checksum,
            target_dir: req.target_dir,
            ..Default::default()
        };
        // Recorded before the answer: a restart from now on finds the job.
        let _ = self.put(view.clone()).await;
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let s = rx.borrow_and_update().clone();
                if s.state.is_finished() {
                    this.finish(&s);
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(view)
    }

    fn registry(&self, dir: &Path) -> DownloadJobs {
        let mut r = self.registries.lock().unwrap_or_else(|e| e.into_inner());
        r.entry(dir.to_path_buf())
            .or_insert_with(|| DownloadJobs::new(dir, HttpOptions::default(), JobLimits::default()))
            .clone()
    }

    /// A job now: live figures while it runs, the record once it ended.
    pub fn status(&self, job_id: &str) -> Result<JobView, DownloadError> {
        let view = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(job_id)
            .cloned()
            .ok_or_else(|| DownloadError::NotFound(job_id.to_string()))?;
        if view.status != "downloading" {
            return Ok(view);
        }
        let dir = Path::new(&view.target_path).parent().map(Path::to_path_buf);
        let live = dir.and_then(|d| self.registry(&d).status(job_id).ok());
        Ok(match live {
            Some(s) => merge(view, &s),
            None => view,
        })
    }

    fn finish(&self, s: &JobStatus) {
        let view = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&s.job_id)
            .cloned();
        if let Some(mut v) = view.map(|v| merge(v, s)) {
            v.completed_at = Some(rfc3339_now());
            drop(self.put(v));
        }
    }

    /// Records a job; the file is written in the background (await the handle to know it is).
    fn put(&self, view: JobView) -> tokio::task::JoinHandle<()> {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(view.job_id.clone(), view);
        let (record, jobs) = (self.record.clone(), self.jobs.clone());
        tokio::task::spawn_blocking(move || record.save(&jobs))
    }
}

/// A job's live status laid over its record.
fn merge(mut v: JobView, s: &JobStatus) -> JobView {
    v.status = match s.state {
        JobState::Completed => "completed",
        JobState::Failed | JobState::Cancelled => "failed",
        _ => "downloading",
    }
    .into();
    v.progress_percent = s.percent();
    v.bytes_downloaded = s.bytes_done;
    v.bytes_total = s.bytes_total.unwrap_or(0);
    if let Some(p) = &s.path {
        v.target_path = p.display().to_string();
    }
    v.error_message = s
        .error
        .clone()
        .or_else(|| (s.state == JobState::Cancelled).then(|| "cancelled".to_string()));
    v
}

/// Now as RFC 3339 (UTC, seconds).
pub fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    prost_types::Timestamp {
        seconds: secs,
        nanos: 0,
    }
    .to_string()
}

#[cfg(test)]
#[path = "tests/downloads.rs"]
mod tests;
