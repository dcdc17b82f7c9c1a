//! `<state>/http/downloads.json`: the HTTP download jobs, written atomically (0600) off the
//! async runtime, one writer at a time, each writing the table as it is when it writes (so the
//! last write is the latest table).

use super::downloads::JobView;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Jobs by id.
pub type Jobs = Arc<Mutex<BTreeMap<String, JobView>>>;

/// Most jobs recorded; past it, finished ones are dropped, oldest id first.
const MAX_JOBS: usize = 256;

/// A job as the file keeps it: what is answered, and what restarting it takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Saved {
    #[serde(flatten)]
    view: JobView,
    checksum: String,
    target_dir: String,
}

/// The record file.
#[derive(Debug)]
pub struct Record {
    file: PathBuf,
    writing: Mutex<()>,
}

impl Record {
    /// The record in `<state>/http/`.
    pub fn new(state_dir: &Path) -> Self {
        Record {
            file: state_dir.join("http").join("downloads.json"),
            writing: Mutex::new(()),
        }
    }

    /// The jobs recorded (none when the file is missing or unreadable). Blocking.
    pub fn load(&self) -> BTreeMap<String, JobView> {
        let saved: BTreeMap<String, Saved> = std::fs::read(&self.file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        saved
            .into_iter()
            .map(|(id, s)| {
                let mut v = s.view;
                (v.checksum, v.target_dir) = (s.checksum, s.target_dir);
                (id, v)
            })
            .collect()
    }

    /// Writes `jobs` as they are now (a failure is logged). Blocking.
    pub fn save(&self, jobs: &Jobs) {
        let _one = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = {
            let mut jobs = jobs.lock().unwrap_or_else(|e| e.into_inner());
            if jobs.len() > MAX_JOBS {
                let done: Vec<String> = jobs
                    .iter()
                    .filter(|(_, j)| j.status != "downloading")
                    .map(|(id, _)| id.clone())
                    .take(jobs.len() - MAX_JOBS)
                    .collect();
                for id in done {
                    jobs.remove(&id);
                }
            }
            let saved: BTreeMap<&String, Saved> = jobs
                .iter()
                .map(|(id, v)| {
                    let s = Saved {
                        view: v.clone(),
                        checksum: v.checksum.clone(),
                        target_dir: v.target_dir.clone(),
                    };
                    (id, s)
                })
                .collect();
            serde_json::to_vec_pretty(&saved)
        };
        let written = bytes.map_err(|e| e.to_string()).and_then(|bytes| {
            if let Some(dir) = self.file.parent() {
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            }
            limiquantix_fs::write_atomic(&self.file, &bytes, 0o600).map_err(|e| e.to_string())
        });
        if let Err(e) = written {
            tracing::error!(file = %self.file.display(), error = %e, "cannot record the download jobs");
        }
    }
}
