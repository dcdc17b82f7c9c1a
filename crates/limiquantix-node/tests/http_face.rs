//! The node's HTTP face through the daemon binary, called as the LimiQuantix control plane's Go
//! code calls it (method, path, headers, body; TLS without verification), asserting on the
//! fields it reads. No guest boots: Add Host (ping → token → discovery, with a missing, wrong,
//! used and expired token), the allow-list on both listeners, the self-signed certificate made
//! once and reused across a restart, image downloads from a local HTTP server into a pool (right
//! and wrong sha256, a `targetDir` outside the pools, a restart in the middle of a slow
//! transfer), and the VM endpoints on an unknown VM (404) and on a VM whose agent is absent.

mod common;

use common::{Node, eventually};
use limiquantix_proto::v1 as pb;
use limiquantix_proto::v1::node_http_service_client::NodeHttpServiceClient;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const WAIT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A raw disk image: a zero boot sector, then a pattern.
fn raw_image(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| if i < 1024 { 0 } else { (i * 7 % 251) as u8 })
        .collect()
}

/// Serves `body` at every path over HTTP/1.1 with `Range: bytes=N-` support; with
/// `chunk_delay`, 32 KiB at a time with that pause between.
async fn file_server(body: Vec<u8>, chunk_delay: Option<Duration>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
                let from = text
                    .lines()
                    .find_map(|l| l.strip_prefix("range: bytes="))
                    .and_then(|r| r.split('-').next()?.trim().parse::<usize>().ok())
                    .unwrap_or(0)
                    .min(body.len());
                let head = if from > 0 {
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\nConnection: close\r\n\r\n",
                        body.len() - from,
                        body.len() - 1,
                        body.len()
                    )
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                };
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for chunk in body[from..].chunks(32 * 1024) {
                    if sock.write_all(chunk).await.is_err() {
                        return;
                    }
                    if let Some(d) = chunk_delay {
                        tokio::time::sleep(d).await;
                    }
                }
            });
        }
    });
    base
}

/// A response's JSON body (`null` when it is none).
async fn json(r: reqwest::Response) -> Value {
    let bytes = r.bytes().await.unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// An HTTP client like the control plane's: no certificate check, 30 s.
fn client_from(source: Option<IpAddr>) -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .local_address(source)
        .build()
        .unwrap()
}

struct Face {
    node: Node,
    https: String,
    http: String,
    http_client: reqwest::Client,
}

impl Face {
    fn start() -> Face {
        let mut node = Node::new();
        let (p1, p2) = (free_port(), free_port());
        node.args = [
            "--http-listen",
            &format!("127.0.0.1:{p1}"),
            "--image-http-listen",
            &format!("127.0.0.1:{p2}"),
            "--allow-from",
            "127.0.0.1",
        ]
        .map(String::from)
        .to_vec();
        node.start();
        Face {
            node,
            https: format!("https://127.0.0.1:{p1}"),
            http: format!("http://127.0.0.1:{p2}"),
            http_client: client_from(None),
        }
    }

    async fn admin(&self) -> NodeHttpServiceClient<tonic::transport::Channel> {
        let channel = tonic::transport::Endpoint::from_shared(format!(
            "unix:{}",
            self.node.socket().display()
        ))
        .unwrap()
        .connect()
        .await
        .unwrap();
        NodeHttpServiceClient::new(channel)
    }

    /// GET `path` on the HTTPS listener, with a bearer token when given: status and JSON body.
    async fn get(&self, path: &str, bearer: Option<&str>) -> (u16, Value) {
        let mut req = self.http_client.get(format!("{}{path}", self.https));
        if let Some(t) = bearer {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, json(r).await)
    }

    async fn post(&self, base: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http_client
            .post(format!("{base}{path}"))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, json(r).await)
    }

    async fn job(&self, job_id: &str) -> Value {
        let url = format!("{}/api/v1/images/download/{job_id}", self.http);
        let r = self.http_client.get(url).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        json(r).await
    }

    async fn job_until(&self, job_id: &str, f: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let ok = eventually(WAIT, async || {
            last = self.job(job_id).await;
            f(&last)
        })
        .await;
        assert!(ok, "job {job_id} never got there: {last}");
        last
    }
}

#[path = "http_face/go_shapes.rs"]
mod go_shapes;

#[path = "http_face/cases.rs"]
mod cases;
