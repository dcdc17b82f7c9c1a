//! The one place where errors become gRPC status codes.
//!
//! Handlers return [`ApiError`]; its `From` into [`tonic::Status`] decides the code. Messages
//! name the field, what was wrong and what is allowed; they never carry user-data bodies or
//! passwords (validators report line and key, not content).

use crate::confine::ConfineError;
use crate::images::ImageError;
use crate::images::jobs::JobError;
use limiquantix_storage::StorageError;
use limiquantix_vm::BackendError;
use tonic::{Code, Status};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request field is not acceptable.
    #[error("{field}: {problem}")]
    InvalidArgument {
        /// The field, e.g. `spec.disks[0].size_gib`.
        field: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// A host path is refused by the confinement rules.
    #[error(transparent)]
    Confine(#[from] ConfineError),
    /// A field is larger than allowed.
    #[error("{field}: {problem}")]
    TooLarge {
        /// The field.
        field: String,
        /// Its size and the limit.
        problem: String,
    },
    /// A VM with this id exists with a different spec.
    #[error(
        "VM {vm_id} already exists with a different spec (CreateVM is idempotent only for the same request)"
    )]
    AlreadyExists {
        /// The VM.
        vm_id: String,
    },
    /// The backend refused or failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The image library refused or failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The download-job registry refused.
    #[error(transparent)]
    Download(#[from] JobError),
    /// The method is not implemented yet.
    #[error("{method} is not implemented yet: {waits_for}")]
    Unimplemented {
        /// The RPC.
        method: &'static str,
        /// What it waits for.
        waits_for: &'static str,
    },
    /// What the request names does not exist (the message says what).
    #[error("{0}")]
    NotFound(String),
    /// The request may not do this (the message says why).
    #[error("{0}")]
    PermissionDenied(String),
    /// The request cannot be satisfied in the current state of the node (the message says why).
    #[error("{0}")]
    Precondition(String),
    /// The request would take more room than there is (the message says how much of what).
    #[error("{0}")]
    Exhausted(String),
    /// A volume operation refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A server-side failure (I/O, a task that panicked).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// An invalid field.
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::Confine(ConfineError::Outside { .. }) => Code::PermissionDenied,
            Self::Confine(ConfineError::WrongDir { inside: false, .. }) => Code::PermissionDenied,
            Self::Confine(_) => Code::InvalidArgument,
            Self::TooLarge { .. } => Code::InvalidArgument,
            Self::AlreadyExists { .. } => Code::AlreadyExists,
            Self::Backend(b) => match b {
                BackendError::NotFound { .. } | BackendError::DeviceNotFound { .. } => {
                    Code::NotFound
                }
                BackendError::AlreadyExists { .. } | BackendError::SnapshotExists { .. } => {
                    Code::AlreadyExists
                }
                BackendError::InvalidTransition { .. } | BackendError::NotRunning { .. } => {
                    Code::FailedPrecondition
                }
                BackendError::Model(_) | BackendError::Invalid(_) => Code::InvalidArgument,
                BackendError::Precondition(_) => Code::FailedPrecondition,
                BackendError::Timeout(_) => Code::DeadlineExceeded,
                BackendError::Internal(_) => Code::Internal,
            },
            Self::Image(e) => image_code(e),
            Self::Download(e) => match e {
                JobError::InvalidId(_) => Code::InvalidArgument,
                JobError::NotFound(_) => Code::NotFound,
                JobError::Conflict(_) | JobError::NameBusy { .. } => Code::AlreadyExists,
                JobError::TooMany(_) => Code::ResourceExhausted,
                JobError::Finished { .. } => Code::FailedPrecondition,
                JobError::Slow(_) => Code::DeadlineExceeded,
                JobError::Image(e) => image_code(e),
            },
            Self::Unimplemented { .. } => Code::Unimplemented,
            Self::NotFound(_) => Code::NotFound,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::Precondition(_) => Code::FailedPrecondition,
            Self::Exhausted(_) => Code::ResourceExhausted,
            Self::Storage(e) => storage_code(e),
            Self::Internal(_) => Code::Internal,
        }
    }
}

/// The gRPC code of a storage error.
fn storage_code(e: &StorageError) -> Code {
    use StorageError as E;
    match e {
        E::BadName { .. }
        | E::BadSize(_)
        | E::Shrink { .. }
        | E::UnsupportedFormat { .. }
        | E::OverlayTooSmall { .. }
        | E::BackingNotAbsolute { .. }
        | E::NotAnImage { .. }
        | E::FormatMismatch { .. }
        | E::BackingFormatMissing { .. } => Code::InvalidArgument,
        E::AlreadyExists { .. } => Code::AlreadyExists,
        E::Missing { .. } => Code::NotFound,
        E::RawSnapshot { .. } | E::Snapshot { .. } => Code::FailedPrecondition,
        E::Io { .. }
        | E::Qcow2 { .. }
        | E::Unreadable { .. }
        | E::Spawn { .. }
        | E::QemuImg { .. }
        | E::Task(_) => Code::Internal,
    }
}

/// The gRPC code of an image-library error.
fn image_code(e: &ImageError) -> Code {
    use ImageError as E;
    match e {
        E::InvalidName { .. }
        | E::NoName { .. }
        | E::Ambiguous { .. }
        | E::InvalidChecksum(_)
        | E::InvalidSource { .. }
        | E::UnsupportedFormat { .. }
        | E::ChecksumMismatch { .. }
        | E::Empty(_) => Code::InvalidArgument,
        E::AlreadyExists(_) | E::Unverified { .. } => Code::AlreadyExists,
        E::NotFound(_) => Code::NotFound,
        E::InUse { .. } | E::HttpStatus { .. } => Code::FailedPrecondition,
        E::Busy(_) | E::Upload { .. } => Code::Aborted,
        E::Cancelled(_) => Code::Cancelled,
        E::Transfer { .. } | E::Incomplete { .. } => Code::Unavailable,
        E::Io { .. } => Code::Internal,
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Internal(format!("a worker task failed: {e}"))
    }
}

/// Prefix of tonic's message when a request exceeds the decoding limit (tonic answers
/// OUT_OF_RANGE; [`map_oversized_request`] turns it into RESOURCE_EXHAUSTED, the gRPC code for a
/// message larger than the receiver accepts).
const OVERSIZED: &str = "Error, decoded message length too large";

/// Rewrites the status of a response that failed because the request was larger than the
/// server's limit: OUT_OF_RANGE → RESOURCE_EXHAUSTED, with a message saying the limit. Other
/// responses pass unchanged. Used as a tower `map_response` layer on the server.
pub fn map_oversized_request<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let is_oversized = headers.get("grpc-status").and_then(|v| v.to_str().ok())
        == Some(&(Code::OutOfRange as i32).to_string())
        && headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| percent_decode(m).starts_with(OVERSIZED));
    if is_oversized {
        let message = headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .map(percent_decode)
            .unwrap_or_default();
        let limit = message
            .rsplit("the limit is: ")
            .next()
            .unwrap_or("the configured limit")
            .to_string();
        let status = Status::resource_exhausted(format!(
            "request too large: the daemon accepts requests up to {limit} (max_request_bytes); \
             cloud-init documents are limited to {} bytes each",
            limiquantix_cloudinit::validate::MAX_FILE_BYTES
        ));
        headers.remove("grpc-message");
        headers.remove("grpc-status");
        let _ = status.add_header(headers);
    }
    response
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let outside = ConfineError::Outside {
            field: "f".into(),
            path: "/etc/shadow".into(),
            allowed: "/x".into(),
        };
        assert_eq!(ApiError::from(outside).code(), Code::PermissionDenied);
        let missing = ConfineError::Missing {
            field: "f".into(),
            path: "/x/y".into(),
        };
        assert_eq!(ApiError::from(missing).code(), Code::InvalidArgument);
        let v = limiquantix_vm::VmId::parse("0d6b5c3e-8f1a-4c2b-9e7d-1a2b3c4d5e6f").unwrap();
        let busy = BackendError::InvalidTransition {
            vm_id: v.clone(),
            state: limiquantix_vm::VmState::Running,
            op: limiquantix_vm::VmOp::Delete,
        };
        assert_eq!(ApiError::from(busy).code(), Code::FailedPrecondition);
        let no_disk = BackendError::DeviceNotFound {
            vm_id: v.clone(),
            kind: "disk",
            device_id: "data".into(),
        };
        let s: Status = ApiError::from(no_disk).into();
        assert_eq!(s.code(), Code::NotFound);
        // The VM is there: the control plane must not read "VM not found".
        assert!(!s.message().contains("VM not found"), "{}", s.message());
        assert_eq!(
            ApiError::from(BackendError::NotFound { vm_id: v }).code(),
            Code::NotFound
        );
        let s: Status = ApiError::Unimplemented {
            method: "CreateSnapshot",
            waits_for: "snapshot support",
        }
        .into();
        assert_eq!(s.code(), Code::Unimplemented);
        assert!(s.message().contains("CreateSnapshot"));
        let not_dir = |inside| ConfineError::WrongDir {
            field: "target_dir".into(),
            path: "/x".into(),
            allowed: "/images".into(),
            inside,
        };
        assert_eq!(
            ApiError::from(not_dir(false)).code(),
            Code::PermissionDenied
        );
        assert_eq!(ApiError::from(not_dir(true)).code(), Code::InvalidArgument);
        assert_eq!(
            ApiError::from(ImageError::Cancelled("x".into())).code(),
            Code::Cancelled
        );
        assert_eq!(
            ApiError::from(JobError::NotFound("j".into())).code(),
            Code::NotFound
        );
        assert_eq!(
            ApiError::from(JobError::TooMany(8)).code(),
            Code::ResourceExhausted
        );
        assert_eq!(
            ApiError::from(JobError::Image(ImageError::AlreadyExists("x".into()))).code(),
            Code::AlreadyExists
        );
        assert_eq!(
            ApiError::Precondition("no ovs".into()).code(),
            Code::FailedPrecondition
        );
    }

    #[test]
    fn oversized_requests_become_resource_exhausted() {
        let status = Status::out_of_range(
            "Error, decoded message length too large: found 104857700 bytes, the limit is: 16777216 bytes",
        );
        let mut response = http::Response::new(());
        status.add_header(response.headers_mut()).unwrap();
        let mapped = map_oversized_request(response);
        let back = Status::from_header_map(mapped.headers()).unwrap();
        assert_eq!(back.code(), Code::ResourceExhausted);
        assert!(
            back.message().contains("16777216 bytes"),
            "{}",
            back.message()
        );

        let other = Status::out_of_range("something else");
        let mut response = http::Response::new(());
        other.add_header(response.headers_mut()).unwrap();
        let back = Status::from_header_map(map_oversized_request(response).headers()).unwrap();
        assert_eq!(back.code(), Code::OutOfRange);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%3A"), "a b:");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
