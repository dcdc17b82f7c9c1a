//! The plaintext TCP listener (`plaintext+tcp:`) the LimiQuantix control plane dials: it serves
//! the addresses of its allow-list only, closes every other connection at accept time (before
//! any HTTP/2 byte) and counts it without flooding the log, answers HealthCheck fast even while
//! the backend is busy, and is never started without an allow-list.

mod common;

use common::{Node, cloud_vm};
use limiquantix_proto::v1 as pb;
use limiquantix_proto::{NodeClient, connect_plaintext};
use std::io::Read as _;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};
use tonic::transport::Endpoint;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A node with a plaintext listener at `listen`, allowing `allow`, and its Unix socket (last:
/// listeners are bound in order, so the plaintext one is up once the socket appears).
fn node_with(listen: &str, allow: &[&str]) -> Node {
    let mut node = Node::new();
    node.args = vec![
        "--listen".into(),
        format!("plaintext+tcp:{listen}"),
        "--listen".into(),
        format!("unix:{}", node.socket().display()),
    ];
    for a in allow {
        node.args.extend(["--allow-from".into(), a.to_string()]);
    }
    node
}

/// A plaintext client whose connection leaves from `source`.
async fn client_from(source: &str, port: u16) -> Result<NodeClient, tonic::transport::Error> {
    let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .local_address(Some(source.parse::<IpAddr>().unwrap()))
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    Ok(NodeClient::new(channel))
}

/// Connects from 127.0.0.1 with a raw socket: the connection is closed without a byte.
fn refused_raw(port: u16) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0, "a refused connection got bytes: {:?}", &buf[..n]),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allow_list_is_served_and_everyone_else_is_closed_and_counted() {
    let port = free_port();
    let mut node = node_with(&format!("127.0.0.1:{port}"), &["127.0.0.2"]);
    node.start();
    let log = node.log_text();
    assert!(
        log.contains("WARN")
            && log.contains("PLAINTEXT gRPC listener")
            && log.contains("unauthenticated and unencrypted")
            && log.contains("127.0.0.2/32"),
        "{log}"
    );

    // From the allow-list: HealthCheck answers, connect included, within a second.
    for _ in 0..3 {
        let t = Instant::now();
        let mut client = client_from("127.0.0.2", port).await.unwrap();
        let h = client
            .health_check(pb::HealthCheckRequest {})
            .await
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert!(!h.into_inner().version.is_empty());
    }

    // From elsewhere: closed before any HTTP/2 byte (a gRPC client's failure is in the
    // dual-stack test: it may retry, which would blur the count here).
    for _ in 0..3 {
        refused_raw(port);
    }

    // One warning line for the source (the rest are counted, not logged), then the total.
    let log = node.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refused a connection from outside the allow-list"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("peer=127.0.0.1"), "{}", warnings[0]);
    node.terminate();
    let log = node.log_text();
    let total = log
        .lines()
        .find(|l| l.contains("plaintext listener closed"))
        .unwrap_or_else(|| panic!("no total at shutdown: {log}"));
    assert!(total.contains("refused_total=3"), "{total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_peers_on_a_dual_stack_listener_match_ipv4_entries() {
    let port = free_port();
    let mut node = node_with(&format!("[::]:{port}"), &["127.0.0.2", "fd00::/8"]);
    node.start();
    let mut client = client_from("127.0.0.2", port).await.unwrap();
    client
        .health_check(pb::HealthCheckRequest {})
        .await
        .unwrap();
    refused_raw(port);
    for target in [format!("tcp:[::1]:{port}"), format!("tcp:127.0.0.1:{port}")] {
        let refused = match connect_plaintext(&target).await {
            Err(_) => true,
            Ok(mut c) => c.health_check(pb::HealthCheckRequest {}).await.is_err(),
        };
        assert!(refused, "{target} is outside the allow-list");
    }
    node.terminate();
}

#[test]
fn a_plaintext_listener_without_an_allow_list_is_refused_at_start() {
    let node = node_with(&format!("127.0.0.1:{}", free_port()), &[]);
    let (status, log) = node.run_expecting_refusal();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains("plaintext+tcp: listener") && log.contains("--allow-from"),
        "{log}"
    );
}

/// The control plane runs HealthCheck (5 s timeout) before every CreateVM: it must not wait
/// behind one. A `qemu-img` wrapper holds a CreateVM inside the backend for 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_answers_within_a_second_while_a_create_vm_waits_on_the_backend() {
    let port = free_port();
    let mut node = node_with(&format!("127.0.0.1:{port}"), &["127.0.0.0/8"]);
    let marker = node.root.join("qemu-img-started");
    let wrapper = node.root.join("slow-qemu-img");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = create ]; then touch '{}'; sleep 5; fi\nexec qemu-img \"$@\"\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    node.qemu_img = Some(wrapper);
    let backing = node.small_image("cloud.qcow2");
    node.start();
    let mut local = node.client().await;
    let create = tokio::spawn(async move {
        local
            .create_vm(cloud_vm("", "slow", &backing))
            .await
            .map(|r| r.into_inner().created)
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "qemu-img never ran: {}",
            node.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = Instant::now();
    let mut client = connect_plaintext(&format!("tcp:127.0.0.1:{port}"))
        .await
        .unwrap();
    let h = client
        .health_check(pb::HealthCheckRequest {})
        .await
        .unwrap();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(1), "HealthCheck took {took:?}");
    assert!(!h.into_inner().version.is_empty());
    assert!(!create.is_finished(), "CreateVM was still inside qemu-img");
    assert!(
        create.await.unwrap().unwrap(),
        "CreateVM finished after the wait"
    );
    node.terminate();
}
