//! Answers of the HTTP face: JSON bodies, and errors as the HTTP status of their gRPC code with
//! `{"success": false, "error": "...", "code": "..."}` (the service's own message, which names
//! the field or the reason).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tonic::Code;

/// The HTTP status of a gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The snake_case name of a gRPC code (`not_found`), as Connect spells it.
pub fn code_name(code: Code) -> String {
    let debug = format!("{code:?}");
    let mut out = String::new();
    for (i, ch) in debug.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// An error answer.
pub fn error(code: Code, message: impl Into<String>) -> Response {
    let body = serde_json::json!({
        "success": false,
        "error": message.into(),
        "code": code_name(code),
    });
    (http_status(code), Json(body)).into_response()
}

/// The answer of a service error.
pub fn status(s: &tonic::Status) -> Response {
    error(s.code(), s.message())
}

/// A 200 JSON answer.
pub fn ok(body: impl serde::Serialize) -> Response {
    (StatusCode::OK, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_statuses_and_names() {
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(http_status(Code::FailedPrecondition), StatusCode::CONFLICT);
        assert_eq!(code_name(Code::FailedPrecondition), "failed_precondition");
        assert_eq!(code_name(Code::NotFound), "not_found");
    }
}
