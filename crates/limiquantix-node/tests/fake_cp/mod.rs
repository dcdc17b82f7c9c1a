//! A fake LimiQuantix control plane: the Connect JSON routes a node calls, answered as the Go
//! control plane answers them (protojson: int64 as strings; Connect errors
//! `{"code","message"}`), every call recorded. Nodes are known by host name, as upstream keys
//! them; [`FakeCp::forget_nodes`] plays a control plane that lost its database.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// Route prefix of the node service.
pub const NODE_SERVICE: &str = "limiquantix.compute.v1.NodeService/";

/// One call the node made.
#[derive(Debug, Clone)]
pub struct Call {
    /// `Method` (for the node service) or `package.Service/Method`.
    pub method: String,
    /// When it arrived.
    pub at: Instant,
    /// Its JSON body.
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    /// host name → node id.
    nodes: HashMap<String, String>,
}

type Shared = Arc<Mutex<Inner>>;

/// The fake, on a fixed port so it can go down and come back.
pub struct FakeCp {
    state: Shared,
    /// Its port on 127.0.0.1.
    pub port: u16,
    running: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

impl FakeCp {
    /// A fake for a free port, not listening yet.
    pub fn new() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        FakeCp {
            state: Shared::default(),
            port,
            running: None,
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts listening.
    pub async fn start(&mut self) {
        assert!(self.running.is_none(), "already up");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(self.state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    rx.await.ok();
                })
                .await
                .unwrap();
        });
        self.running = Some((tx, task));
    }

    /// Stops listening and closes every connection.
    pub async fn stop(&mut self) {
        let (tx, task) = self.running.take().expect("up");
        tx.send(()).ok();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the fake stops")
            .unwrap();
    }

    /// The calls of `method` so far.
    pub fn calls(&self, method: &str) -> Vec<Call> {
        let inner = self.state.lock().unwrap();
        inner
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// Waits until `n` calls of `method` arrived, and returns them.
    pub async fn wait_calls(&self, method: &str, n: usize, limit: Duration) -> Vec<Call> {
        let deadline = Instant::now() + limit;
        loop {
            let calls = self.calls(method);
            if calls.len() >= n {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "{} {method} calls within {limit:?}, got {}",
                n,
                calls.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Forgets every node: heartbeats get `not_found`, the next registration a new id.
    pub fn forget_nodes(&self) {
        self.state.lock().unwrap().nodes.clear();
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn not_found(id: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"code": "not_found", "message": format!("node '{id}' not found")}),
    )
}

async fn handle(State(state): State<Shared>, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().trim_start_matches('/');
    let method = path.strip_prefix(NODE_SERVICE).unwrap_or(path).to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut inner = state.lock().unwrap();
    inner.calls.push(Call {
        method: method.clone(),
        at: Instant::now(),
        body: body.clone(),
    });
    let known = |inner: &Inner, id: &Value| {
        inner
            .nodes
            .values()
            .any(|v| Some(v.as_str()) == id.as_str())
    };
    match method.as_str() {
        "RegisterNode" => register(&mut inner, &body),
        "UpdateHeartbeat" if known(&inner, &body["nodeId"]) => json_response(
            StatusCode::OK,
            json!({"acknowledged": true, "serverTimeUnix": now().to_string(),
                   "heartbeatIntervalSecs": 30}),
        ),
        "UpdateHeartbeat" | "SyncNodeVMs" if !known(&inner, &body["nodeId"]) => {
            not_found(body["nodeId"].as_str().unwrap_or_default())
        }
        "SyncNodeVMs" => json_response(
            StatusCode::OK,
            json!({"importedCount": body["vms"].as_array().map_or(0, Vec::len)}),
        ),
        "limiquantix.storage.v1.ImageService/ScanLocalImages" => json_response(
            StatusCode::OK,
            json!({"registeredCount": body["images"].as_array().map_or(0, Vec::len)}),
        ),
        "SyncFullState" | "NotifyVMChange" | "NotifyStorageChange" => json_response(
            StatusCode::NOT_IMPLEMENTED,
            json!({"code": "unimplemented",
                   "message": format!("limiquantix.compute.v1.NodeService.{method} is not implemented")}),
        ),
        _ => (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// RegisterNode as upstream answers it: the `Node`, int64 fields as strings, port stripped.
fn register(inner: &mut Inner, body: &Value) -> Response {
    let hostname = body["hostname"].as_str().unwrap_or_default().to_string();
    let ip = body["managementIp"].as_str().unwrap_or_default();
    if hostname.is_empty() || ip.is_empty() {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"code": "invalid_argument", "message": "hostname and management_ip are required"}),
        );
    }
    let ip = ip.split(':').next().unwrap_or_default();
    let id = inner
        .nodes
        .entry(hostname.clone())
        .or_insert_with(|| uuid::Uuid::new_v4().to_string())
        .clone();
    let memory = &body["memoryInfo"];
    json_response(
        StatusCode::OK,
        json!({
            "id": id, "hostname": hostname, "managementIp": ip, "labels": {},
            "spec": {"cpu": body["cpuInfo"], "memory": {"totalBytes": memory["totalBytes"],
                     "allocatableBytes": memory["allocatableBytes"]},
                     "role": {"compute": true}},
            "status": {"phase": "READY", "conditions": [{"type": "Ready", "status": "TRUE"}],
                       "resources": {"cpu": {"allocatableVcpus": 4},
                                     "memory": {"allocatableBytes": "1073741824",
                                                "allocatedBytes": "0"}}},
            "createdAt": "2026-01-02T03:04:05Z", "updatedAt": "2026-01-02T03:04:05.5Z",
            "anAnswerFieldTheNodeDoesNotKnow": {"x": ["y"]}
        }),
    )
}
