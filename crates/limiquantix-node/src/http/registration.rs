//! Add Host: `GET /api/v1/registration/ping` (no authentication), `/token` and `/discovery`
//! (`Authorization: Bearer <token>`). `/token` answers 200 for a valid token, 401
//! `{"error":"token_expired"}` for an expired one, 401 `{"error":"invalid_token"}` for a wrong,
//! missing or already used one, 404 `{"error":"no_token"}` when the node has no usable token; a
//! successful `/discovery` consumes the token. Tokens are never logged.

use super::reply;
use super::state::Shared;
use super::tokens::Check;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use limiquantix_vm::VmBackend;
use std::net::IpAddr;
use std::sync::Arc;
use tonic::Code;

/// The version the ping reports.
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn hostname() -> String {
    crate::hostinfo::uname().1
}

/// The management address: the IP literal the caller reached us by (`Host`), else the HTTPS
/// listener's address when it is not a wildcard, else empty.
fn management_ip<B>(s: &Shared<B>, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let literal = host
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| host.parse::<IpAddr>());
    match (literal, s.https) {
        (Ok(ip), _) => ip.to_string(),
        (Err(_), Some(a)) if !a.ip().is_unspecified() => a.ip().to_string(),
        _ => String::new(),
    }
}

/// `GET /api/v1/registration/ping`.
pub async fn ping<B: VmBackend>(State(s): State<Arc<Shared<B>>>, headers: HeaderMap) -> Response {
    reply::ok(serde_json::json!({
        "status": "ok",
        "version": VERSION,
        "message": "limiquantix-node is ready for registration",
        "apiVersion": "v1",
        "hostname": hostname(),
        "managementIp": management_ip(&s, &headers),
        "registrationApiSupported": true,
        "timestamp": super::downloads::rfc3339_now(),
    }))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty() && t.len() <= 256)
}

fn refusal(status: StatusCode, error: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": error, "message": message });
    (status, Json(body)).into_response()
}

/// The answer for anything but a valid token.
fn refused(check: &Check) -> Option<Response> {
    Some(match check {
        Check::Valid { .. } => return None,
        Check::Expired => refusal(
            StatusCode::UNAUTHORIZED,
            "token_expired",
            "the registration token has expired: make a new one with lqctl node token create",
        ),
        Check::Used => refusal(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the registration token was already used: make a new one with lqctl node token create",
        ),
        Check::Invalid => refusal(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the registration token is not this node's (Authorization: Bearer <token>)",
        ),
        Check::NoneExists => refusal(
            StatusCode::NOT_FOUND,
            "no_token",
            "this node has no registration token: make one with lqctl node token create",
        ),
    })
}

/// `GET /api/v1/registration/token`.
pub async fn token<B: VmBackend>(State(s): State<Arc<Shared<B>>>, headers: HeaderMap) -> Response {
    let presented = bearer(&headers);
    let check = s.tokens.check(presented);
    if let Some(r) = refused(&check) {
        tracing::info!(outcome = ?check, "registration token refused");
        return r;
    }
    let Check::Valid {
        created_at,
        expires_at,
    } = check
    else {
        return reply::error(Code::Internal, "token check");
    };
    let ts = |secs: u64| {
        prost_types::Timestamp {
            seconds: secs as i64,
            nanos: 0,
        }
        .to_string()
    };
    let now = super::tokens::now();
    reply::ok(serde_json::json!({
        "token": presented.unwrap_or_default(),
        "createdAt": ts(created_at),
        "expiresAt": ts(expires_at),
        "expiresInSeconds": expires_at.saturating_sub(now),
        "hostname": hostname(),
        "managementIp": management_ip(&s, &headers),
    }))
}

/// `GET /api/v1/registration/discovery`.
pub async fn discovery<B: VmBackend>(
    State(s): State<Arc<Shared<B>>>,
    headers: HeaderMap,
) -> Response {
    let presented = bearer(&headers).map(str::to_string);
    let check = s.tokens.check(presented.as_deref());
    if let Some(r) = refused(&check) {
        tracing::info!(outcome = ?check, "discovery refused");
        return r;
    }
    let ip = management_ip(&s, &headers);
    let pools = s.service.pools().all();
    let doc = match tokio::task::spawn_blocking(move || super::discovery::read(ip, &pools)).await {
        Ok(d) => d,
        Err(e) => return reply::error(Code::Internal, e.to_string()),
    };
    let (tokens, token) = (s.tokens.clone(), presented.unwrap_or_default());
    match tokio::task::spawn_blocking(move || tokens.consume(&token)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return reply::error(Code::Internal, e.to_string()),
        Err(e) => return reply::error(Code::Internal, e.to_string()),
    }
    tracing::info!("discovery answered; the registration token is used up");
    reply::ok(doc)
}
