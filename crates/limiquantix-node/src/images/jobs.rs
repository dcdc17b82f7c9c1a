//! Download jobs: URL imports that run in the background while callers poll them.
//!
//! [`DownloadJobs::start`] checks a request, registers a job and returns at once; a task runs the
//! import ([`ImageLibrary::import_cancellable`]: sha256, resume, format check, nothing visible
//! until all of it passed) and publishes the job's state on a watch channel at every progress
//! report. [`DownloadJobs::cancel`] stops a job and returns once its partial files are gone.
//!
//! Jobs live in memory: at most `max_active` run at once, and finished ones are kept for
//! `keep_finished` (at most `max_finished` of them, the oldest dropped first). A daemon restart
//! forgets every job; the partial file of a download it interrupted stays, and a new job for the
//! same URL and name resumes it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{OnceCell, watch};

mod model;

pub use model::{JobError, JobLimits, JobSpec, JobState, JobStatus, MAX_JOB_ID_LEN};

use super::import::{
    CancelOutcome, ImportCancel, ImportOutcome, ImportProgress, ImportRequest, ImportSource,
};
use super::import::{blocking, parse_sha256};
use super::library::{HttpOptions, ImageLibrary};
use super::name::{derive_name, validate_name};
use crate::images::error::ImageError;

/// How long [`DownloadJobs::cancel`] waits for a job to stop.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// One job in the registry.
struct Job {
    /// The request, normalised (id, name and checksum filled in), to recognise a repeated start.
    spec: JobSpec,
    /// The job's state, for pollers and streams.
    status: watch::Sender<JobStatus>,
    /// Stops the job.
    cancel: ImportCancel,
    /// When the job ended.
    finished_at: Option<Instant>,
}

impl Job {
    fn state(&self) -> JobState {
        self.status.borrow().state
    }
}

/// A job just registered, for the task that runs it.
struct NewJob {
    status: watch::Sender<JobStatus>,
    cancel: ImportCancel,
}

/// What registering a request found.
enum Registered {
    /// The same request had started this job before.
    Existing(watch::Receiver<JobStatus>),
    /// A new job, to run.
    New(NewJob),
}

/// The registry of download jobs over the image library. Cheap to clone.
#[derive(Clone)]
pub struct DownloadJobs {
    shared: Arc<Shared>,
}

struct Shared {
    images_dir: PathBuf,
    http: HttpOptions,
    limits: JobLimits,
    /// Opened on the first start (opening creates directories: blocking work).
    library: OnceCell<ImageLibrary>,
    jobs: Mutex<BTreeMap<String, Job>>,
}

impl DownloadJobs {
    /// A registry importing into the library at `images_dir` (opened on the first start).
    pub fn new(images_dir: impl Into<PathBuf>, http: HttpOptions, limits: JobLimits) -> Self {
        DownloadJobs {
            shared: Arc::new(Shared {
                images_dir: images_dir.into(),
                http,
                limits,
                library: OnceCell::new(),
                jobs: Mutex::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Job>> {
        // A panic while holding the lock leaves a consistent map (every update is one call).
        self.shared.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn library(&self) -> Result<ImageLibrary, ImageError> {
        let s = &self.shared;
        let open = || {
            let (dir, http) = (s.images_dir.clone(), s.http.clone());
            blocking(move || ImageLibrary::with_http_options(dir, http))
        };
        s.library.get_or_try_init(open).await.cloned()
    }

    /// Starts a job, or finds the one this exact request started before (same job id, same
    /// request). Returns at once with a receiver of the job's status; the job runs in a task.
    pub async fn start(&self, spec: JobSpec) -> Result<watch::Receiver<JobStatus>, JobError> {
        let spec = normalise(spec)?;
        let name = spec.name.clone().unwrap_or_default();
        if let Some(rx) = self.same_job(&spec)? {
            return Ok(rx);
        }
        let library = self.library().await?;
        let (lib, n) = (library.clone(), name.clone());
        blocking(move || lib.ensure_free(&n)).await?;
        let request = ImportRequest {
            source: ImportSource::Url(spec.url.clone()),
            name: Some(name.clone()),
            sha256: spec.sha256.clone(),
        };
        let (rx, job) = match self.register(spec)? {
            Registered::Existing(rx) => return Ok(rx),
            Registered::New(new) => (new.status.subscribe(), new),
        };
        let status = rx.borrow().clone();
        tracing::info!(job_id = %status.job_id, image = %name, "download job started");
        tokio::spawn(run(self.clone(), library, request, job));
        Ok(rx)
    }

    /// The job this request started before, when its id is known.
    fn same_job(&self, spec: &JobSpec) -> Result<Option<watch::Receiver<JobStatus>>, JobError> {
        let mut jobs = self.lock();
        prune(&mut jobs, &self.shared.limits, Instant::now());
        find_same(&jobs, spec)
    }

    /// Adds a job, unless the same request started one before.
    fn register(&self, spec: JobSpec) -> Result<Registered, JobError> {
        let mut jobs = self.lock();
        prune(&mut jobs, &self.shared.limits, Instant::now());
        if let Some(rx) = find_same(&jobs, &spec)? {
            return Ok(Registered::Existing(rx));
        }
        let id = spec.job_id.clone().unwrap_or_default();
        let name = spec.name.clone().unwrap_or_default();
        let active: Vec<(&String, &Job)> = jobs
            .iter()
            .filter(|(_, j)| !j.state().is_finished())
            .collect();
        if let Some((other, _)) = active.iter().find(|(_, j)| j.spec.name == spec.name) {
            return Err(JobError::NameBusy {
                name,
                job_id: (*other).clone(),
            });
        }
        if active.len() >= self.shared.limits.max_active {
            return Err(JobError::TooMany(self.shared.limits.max_active));
        }
        let status = watch::Sender::new(JobStatus {
            job_id: id.clone(),
            image_id: spec.image_id.clone(),
            name,
            state: JobState::Pending,
            bytes_done: 0,
            bytes_total: None,
            bytes_per_sec: 0,
            path: None,
            sha256: None,
            error: None,
        });
        let cancel = ImportCancel::new();
        let job = Job {
            spec,
            status: status.clone(),
            cancel: cancel.clone(),
            finished_at: None,
        };
        jobs.insert(id, job);
        Ok(Registered::New(NewJob { status, cancel }))
    }

    /// A job's status now.
    pub fn status(&self, job_id: &str) -> Result<JobStatus, JobError> {
        self.subscribe(job_id).map(|rx| rx.borrow().clone())
    }

    /// A receiver of a job's status.
    pub fn subscribe(&self, job_id: &str) -> Result<watch::Receiver<JobStatus>, JobError> {
        let mut jobs = self.lock();
        prune(&mut jobs, &self.shared.limits, Instant::now());
        jobs.get(job_id)
            .map(|j| j.status.subscribe())
            .ok_or_else(|| JobError::NotFound(job_id.to_owned()))
    }

    /// Stops a job in progress and waits until it has removed its files; cancelling a cancelled
    /// job again succeeds. A job that completed (or had begun publishing its image) or failed
    /// cannot be cancelled.
    pub async fn cancel(&self, job_id: &str) -> Result<JobStatus, JobError> {
        let (cancel, mut rx) = {
            let jobs = self.lock();
            let job = jobs
                .get(job_id)
                .ok_or_else(|| JobError::NotFound(job_id.to_owned()))?;
            (job.cancel.clone(), job.status.subscribe())
        };
        let finished = |state: JobState| JobError::Finished {
            job_id: job_id.to_owned(),
            state,
        };
        match rx.borrow().state {
            JobState::Cancelled => return Ok(rx.borrow().clone()),
            s @ (JobState::Completed | JobState::Failed) => return Err(finished(s)),
            _ => {}
        }
        if cancel.cancel() == CancelOutcome::Cancelled {
            tracing::info!(job_id, "download job cancel requested");
        }
        let ended = tokio::time::timeout(CANCEL_WAIT, rx.wait_for(|s| s.state.is_finished()));
        if ended.await.is_err() {
            return Err(JobError::Slow(job_id.to_owned()));
        }
        let last = rx.borrow().clone();
        match last.state {
            JobState::Cancelled => Ok(last),
            other => Err(finished(other)),
        }
    }

    /// Records that a job ended, and drops what the limits no longer keep.
    fn mark_finished(&self, job_id: &str) {
        let mut jobs = self.lock();
        if let Some(job) = jobs.get_mut(job_id) {
            job.finished_at = Some(Instant::now());
        }
        prune(&mut jobs, &self.shared.limits, Instant::now());
    }
}

/// Checks a request and fills in what it leaves out: the job id, the image name, the checksum
/// in lower case.
fn normalise(spec: JobSpec) -> Result<JobSpec, JobError> {
    let job_id = match spec.job_id {
        Some(id) => {
            let ok = !id.is_empty()
                && id.len() <= MAX_JOB_ID_LEN
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !ok {
                return Err(JobError::InvalidId(id));
            }
            id
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    if !matches!(ImportSource::parse(&spec.url), ImportSource::Url(_))
        || reqwest::Url::parse(&spec.url).is_err()
    {
        return Err(ImageError::InvalidSource {
            source_desc: spec.url,
            reason: "not an http:// or https:// URL".to_owned(),
        }
        .into());
    }
    let name = match spec.name {
        Some(n) => n,
        None => derive_name(&spec.url)?,
    };
    validate_name(&name)?;
    let sha256 = spec.sha256.as_deref().map(parse_sha256).transpose()?;
    Ok(JobSpec {
        job_id: Some(job_id),
        image_id: spec.image_id,
        url: spec.url,
        name: Some(name),
        sha256,
    })
}

/// The job of `spec`'s id: its receiver when the request is the same, a conflict otherwise.
fn find_same(
    jobs: &BTreeMap<String, Job>,
    spec: &JobSpec,
) -> Result<Option<watch::Receiver<JobStatus>>, JobError> {
    let id = spec.job_id.as_deref().unwrap_or_default();
    match jobs.get(id) {
        Some(job) if job.spec == *spec => Ok(Some(job.status.subscribe())),
        Some(_) => Err(JobError::Conflict(id.to_owned())),
        None => Ok(None),
    }
}

/// Drops finished jobs older than the limits keep, then the oldest beyond `max_finished`.
fn prune(jobs: &mut BTreeMap<String, Job>, limits: &JobLimits, now: Instant) {
    jobs.retain(|_, j| {
        j.finished_at
            .is_none_or(|t| now.duration_since(t) < limits.keep_finished)
    });
    let mut finished: Vec<(Instant, String)> = jobs
        .iter()
        .filter_map(|(id, j)| j.finished_at.map(|t| (t, id.clone())))
        .collect();
    if finished.len() > limits.max_finished {
        finished.sort();
        let excess = finished.len() - limits.max_finished;
        for (_, id) in finished.into_iter().take(excess) {
            jobs.remove(&id);
        }
    }
}

/// The task of one job: runs the import, reporting progress into the job's status.
async fn run(jobs: DownloadJobs, library: ImageLibrary, request: ImportRequest, job: NewJob) {
    let NewJob { status, cancel } = job;
    let mut progress = |p: &ImportProgress| status.send_modify(|s| apply_progress(s, p));
    let result = library
        .import_cancellable(request, &cancel, &mut progress)
        .await;
    let cancelled = cancel.is_cancelled();
    status.send_modify(|s| apply_result(s, result, cancelled));
    let last = status.borrow().clone();
    jobs.mark_finished(&last.job_id);
    match last.error.as_deref() {
        None => tracing::info!(
            job_id = %last.job_id, image = %last.name, state = %last.state, bytes = last.bytes_done,
            "download job finished"
        ),
        Some(error) => tracing::warn!(
            job_id = %last.job_id, image = %last.name, state = %last.state, error,
            "download job failed"
        ),
    }
}

/// A progress report into a status: every byte in means the checks run next.
fn apply_progress(s: &mut JobStatus, p: &ImportProgress) {
    s.bytes_done = p.done;
    s.bytes_total = p.total;
    s.bytes_per_sec = p.bytes_per_sec;
    s.state = if p.total == Some(p.done) {
        JobState::Verifying
    } else {
        JobState::Downloading
    };
}

/// The import's result into a status. An import that failed after a cancel counts as
/// cancelled: it kept nothing either way.
fn apply_result(s: &mut JobStatus, result: Result<ImportOutcome, ImageError>, cancelled: bool) {
    match result {
        Ok(o) => {
            s.state = JobState::Completed;
            s.bytes_done = o.image.size_bytes;
            s.bytes_total = Some(o.image.size_bytes);
            s.path = Some(o.image.path);
            s.sha256 = Some(o.sha256);
        }
        Err(_) if cancelled => s.state = JobState::Cancelled,
        Err(e) => {
            s.state = JobState::Failed;
            s.error = Some(e.to_string());
        }
    }
}

#[cfg(test)]
mod tests;
