//! `POST /api/v1/images/download` and `GET /api/v1/images/download/{jobId}`, on both the HTTPS
//! and the plain HTTP listener, over [`super::downloads::HttpDownloads`]. URLs and checksums are
//! logged by the job (never a token or a body).

use super::downloads::{DownloadError, DownloadRequest};
use super::reply;
use super::state::Shared;
use crate::error::ApiError;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use limiquantix_vm::VmBackend;
use std::sync::Arc;
use tonic::Code;

fn refused(e: DownloadError) -> Response {
    match e {
        DownloadError::Invalid { .. } => reply::error(Code::InvalidArgument, e.to_string()),
        DownloadError::NotFound(_) => reply::error(Code::NotFound, e.to_string()),
        DownloadError::Job(j) => {
            let api = ApiError::from(j);
            reply::error(api.code(), api.to_string())
        }
    }
}

/// Starts a download: 200 `{jobId, imageId, targetPath, message}`.
pub async fn start<B: VmBackend>(
    State(s): State<Arc<Shared<B>>>,
    body: Result<Json<DownloadRequest>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return reply::error(Code::InvalidArgument, format!("body: {}", e.body_text())),
    };
    match s.downloads.start(req).await {
        Ok(v) => reply::ok(serde_json::json!({
            "jobId": v.job_id,
            "imageId": v.image_id,
            "targetPath": v.target_path,
            "message": "download started",
        })),
        Err(e) => refused(e),
    }
}

/// A job's status.
pub async fn status<B: VmBackend>(
    State(s): State<Arc<Shared<B>>>,
    Path(job_id): Path<String>,
) -> Response {
    match s.downloads.status(&job_id) {
        Ok(v) => reply::ok(v),
        Err(e) => refused(e),
    }
}
