//! A Connect-RPC client for unary JSON calls: `POST {base}/{package}.{Service}/{Method}` with a
//! protojson body over HTTP/1.1 (plain or TLS), the answer a protojson message on HTTP 200 or a
//! Connect error `{"code","message"}` otherwise.

use limiquantix_proto::compute::v1 as compute;
use limiquantix_proto::storage::v1 as storage;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How long a call may take. The control plane's first RegisterNode of a host dials the node
/// back (up to 10 s) before it answers.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most bytes of an error body kept in a message.
const MAX_ERROR_TEXT: usize = 200;

/// A Connect error code (the gRPC codes, by their Connect names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// `canceled`.
    Canceled,
    /// `unknown`, or a code this client does not know.
    Unknown,
    /// `invalid_argument`.
    InvalidArgument,
    /// `deadline_exceeded`.
    DeadlineExceeded,
    /// `not_found`: for a heartbeat, the control plane does not know the node id.
    NotFound,
    /// `already_exists`.
    AlreadyExists,
    /// `permission_denied`.
    PermissionDenied,
    /// `resource_exhausted`.
    ResourceExhausted,
    /// `failed_precondition`.
    FailedPrecondition,
    /// `aborted`.
    Aborted,
    /// `out_of_range`.
    OutOfRange,
    /// `unimplemented` (also an HTTP 404 without a Connect body: no such route).
    Unimplemented,
    /// `internal`.
    Internal,
    /// `unavailable`.
    Unavailable,
    /// `data_loss`.
    DataLoss,
    /// `unauthenticated`.
    Unauthenticated,
}

/// Every code with its Connect name.
const NAMES: [(Code, &str); 16] = [
    (Code::Canceled, "canceled"),
    (Code::Unknown, "unknown"),
    (Code::InvalidArgument, "invalid_argument"),
    (Code::DeadlineExceeded, "deadline_exceeded"),
    (Code::NotFound, "not_found"),
    (Code::AlreadyExists, "already_exists"),
    (Code::PermissionDenied, "permission_denied"),
    (Code::ResourceExhausted, "resource_exhausted"),
    (Code::FailedPrecondition, "failed_precondition"),
    (Code::Aborted, "aborted"),
    (Code::OutOfRange, "out_of_range"),
    (Code::Unimplemented, "unimplemented"),
    (Code::Internal, "internal"),
    (Code::Unavailable, "unavailable"),
    (Code::DataLoss, "data_loss"),
    (Code::Unauthenticated, "unauthenticated"),
];

impl Code {
    /// The code of a Connect error body's `code`; [`Code::Unknown`] for a name not known.
    pub fn from_name(name: &str) -> Code {
        NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map_or(Code::Unknown, |(c, _)| *c)
    }

    /// The Connect name (`not_found`, ...).
    pub fn as_str(self) -> &'static str {
        NAMES
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("unknown", |(_, n)| n)
    }

    /// The code an HTTP status implies when the body is no Connect error (the Connect
    /// protocol's table).
    pub fn from_http(status: u16) -> Code {
        match status {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502..=504 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error and its causes, `: `-separated (the HTTP client's own message is terse).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// Why a call to the control plane failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The request did not get an answer: connection refused, timeout, TLS.
    #[error("{procedure}: cannot reach the control plane: {}", chain(source))]
    Transport {
        /// `Service/Method`.
        procedure: &'static str,
        /// The HTTP client's error (without the URL).
        source: reqwest::Error,
    },
    /// The control plane answered with an error.
    #[error("{procedure}: the control plane answered {code} (HTTP {http_status}): {message}")]
    Rpc {
        /// `Service/Method`.
        procedure: &'static str,
        /// The Connect code.
        code: Code,
        /// The HTTP status.
        http_status: u16,
        /// The error's message (or the start of a body that was no Connect error).
        message: String,
    },
    /// The answer was not the expected message.
    #[error("{procedure}: cannot decode the control plane's answer: {source}")]
    Decode {
        /// `Service/Method`.
        procedure: &'static str,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The request could not be encoded (a bug).
    #[error("{procedure}: cannot encode the request: {source}")]
    Encode {
        /// `Service/Method`.
        procedure: &'static str,
        /// The JSON error.
        source: serde_json::Error,
    },
}

impl ConnectError {
    /// The Connect code, when the control plane answered with an error.
    pub fn code(&self) -> Option<Code> {
        match self {
            Self::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The Connect error body.
#[derive(Debug, serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// A client of one control plane. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConnectClient {
    base: String,
    http: reqwest::Client,
}

impl ConnectClient {
    /// A client of the control plane at `base` (`http://HOST:PORT`, no trailing `/`).
    pub fn new(base: &str) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .user_agent(concat!("limiquantix-node/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ConnectClient {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// One unary call: `procedure` is `package.Service/Method`.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        procedure: &'static str,
        request: &Req,
    ) -> Result<Resp, ConnectError> {
        let bytes = self.call_bytes(procedure, request).await?;
        serde_json::from_slice(&bytes).map_err(|source| ConnectError::Decode { procedure, source })
    }

    /// One unary call; the body of the 200 answer.
    async fn call_bytes<Req: Serialize>(
        &self,
        procedure: &'static str,
        request: &Req,
    ) -> Result<Vec<u8>, ConnectError> {
        let body = serde_json::to_vec(request)
            .map_err(|source| ConnectError::Encode { procedure, source })?;
        let transport = |e: reqwest::Error| ConnectError::Transport {
            procedure,
            source: e.without_url(),
        };
        let response = self
            .http
            .post(format!("{}/{procedure}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport)?;
        if status == 200 {
            return Ok(bytes.to_vec());
        }
        Err(rpc_error(procedure, status, &bytes))
    }

    /// `NodeService/RegisterNode`.
    pub async fn register_node(
        &self,
        request: &compute::RegisterNodeRequest,
    ) -> Result<compute::Node, ConnectError> {
        const PROCEDURE: &str = "limiquantix.compute.v1.NodeService/RegisterNode";
        let body = self.call_bytes(PROCEDURE, request).await?;
        decode_node(PROCEDURE, &body)
    }

    /// `NodeService/UpdateHeartbeat`.
    pub async fn update_heartbeat(
        &self,
        request: &compute::UpdateHeartbeatRequest,
    ) -> Result<compute::UpdateHeartbeatResponse, ConnectError> {
        self.call(
            "limiquantix.compute.v1.NodeService/UpdateHeartbeat",
            request,
        )
        .await
    }

    /// `NodeService/SyncNodeVMs`.
    pub async fn sync_node_vms(
        &self,
        request: &compute::SyncNodeVMsRequest,
    ) -> Result<compute::SyncNodeVMsResponse, ConnectError> {
        self.call("limiquantix.compute.v1.NodeService/SyncNodeVMs", request)
            .await
    }

    /// `NodeService/SyncFullState` (the control plane at the time of writing answers
    /// `unimplemented`).
    pub async fn sync_full_state(
        &self,
        request: &compute::SyncFullStateRequest,
    ) -> Result<compute::SyncFullStateResponse, ConnectError> {
        self.call("limiquantix.compute.v1.NodeService/SyncFullState", request)
            .await
    }

    /// `ImageService/ScanLocalImages`.
    pub async fn scan_local_images(
        &self,
        request: &storage::ScanLocalImagesRequest,
    ) -> Result<storage::ScanLocalImagesResponse, ConnectError> {
        self.call(
            "limiquantix.storage.v1.ImageService/ScanLocalImages",
            request,
        )
        .await
    }
}

/// RegisterNode's answer. The node needs only its `id`: when the rest does not decode (an enum
/// value newer than these messages), the id alone is taken.
fn decode_node(procedure: &'static str, body: &[u8]) -> Result<compute::Node, ConnectError> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: String,
    }
    serde_json::from_slice::<compute::Node>(body).or_else(|source| {
        match serde_json::from_slice::<IdOnly>(body) {
            Ok(IdOnly { id }) => {
                tracing::debug!(error = %source, "RegisterNode's answer decoded for its id only");
                Ok(compute::Node {
                    id,
                    ..Default::default()
                })
            }
            Err(_) => Err(ConnectError::Decode { procedure, source }),
        }
    })
}

/// The error of a non-200 answer: the Connect body's code and message, or a code from the HTTP
/// status and the start of the body.
fn rpc_error(procedure: &'static str, http_status: u16, body: &[u8]) -> ConnectError {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if !e.code.is_empty() => (Code::from_name(&e.code), e.message),
        _ => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.trim().chars().take(MAX_ERROR_TEXT).collect();
            (Code::from_http(http_status), text)
        }
    };
    ConnectError::Rpc {
        procedure,
        code,
        http_status,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_error_bodies_give_their_code() {
        let e = rpc_error(
            "p",
            404,
            br#"{"code":"not_found","message":"node 'x' not found"}"#,
        );
        assert_eq!(e.code(), Some(Code::NotFound));
        assert!(
            e.to_string()
                .contains("not_found (HTTP 404): node 'x' not found"),
            "{e}"
        );
        let e = rpc_error("p", 501, br#"{"code":"unimplemented"}"#);
        assert_eq!(e.code(), Some(Code::Unimplemented));
        let e = rpc_error("p", 400, br#"{"code":"some_future_code","message":"m"}"#);
        assert_eq!(e.code(), Some(Code::Unknown));
    }

    #[test]
    fn a_node_answer_newer_than_our_messages_still_gives_its_id() {
        let node = decode_node("p", br#"{"id":"n1","managementIp":"10.0.0.1"}"#).unwrap();
        assert_eq!(
            (node.id.as_str(), node.management_ip.as_str()),
            ("n1", "10.0.0.1")
        );
        let newer = br#"{"id":"n2","status":{"phase":"HIBERNATING"}}"#;
        assert_eq!(decode_node("p", newer).unwrap().id, "n2");
        assert!(matches!(
            decode_node("p", br#"{"hostname":"x"}"#.as_slice()),
            Ok(n) if n.id.is_empty()
        ));
        assert!(decode_node("p", b"not json").is_err());
    }

    #[test]
    fn other_bodies_take_the_code_of_the_http_status() {
        // Go's mux for an unknown path: no such procedure, not an unknown node.
        let e = rpc_error("p", 404, b"404 page not found\n");
        assert_eq!(e.code(), Some(Code::Unimplemented));
        assert!(e.to_string().contains("404 page not found"), "{e}");
        assert_eq!(rpc_error("p", 503, b"").code(), Some(Code::Unavailable));
        assert_eq!(rpc_error("p", 500, b"<html>").code(), Some(Code::Unknown));
    }
}
