//! TCP with TLS and client-certificate verification (mTLS), next to the Unix socket, through
//! the client constructors `lqctl` uses.

mod common;

use common::Node;
use limiquantix_proto::v1 as pb;
use limiquantix_proto::{TlsOptions, connect_tls};
use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
fn pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=lq test CA",
        ],
    );
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth",
        ),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.crt"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// Several threads: the clients' connections close while the test waits for the daemon to stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_is_served_with_tls_and_client_certificates_are_required() {
    let mut node = Node::new();
    let pki_dir = node.root.join("pki");
    std::fs::create_dir(&pki_dir).unwrap();
    pki(&pki_dir);
    let port = free_port();
    let p = |f: &str| pki_dir.join(f).display().to_string();
    // The TCP listener first: listeners are bound in order, so it is up once the Unix socket
    // (which the harness waits for) appears.
    node.args = vec![
        "--listen".into(),
        format!("tcp:127.0.0.1:{port}"),
        "--tls-cert".into(),
        p("server.crt"),
        "--tls-key".into(),
        p("server.key"),
        "--tls-client-ca".into(),
        p("ca.crt"),
        "--listen".into(),
        format!("unix:{}", node.socket().display()),
    ];
    node.start();
    let target = format!("tcp:127.0.0.1:{port}");

    let with_cert = TlsOptions {
        ca_cert: Some(pki_dir.join("ca.crt")),
        client_cert: Some(pki_dir.join("client.crt")),
        client_key: Some(pki_dir.join("client.key")),
        domain: None,
    };
    let mut client = connect_tls(&target, &with_cert).await.unwrap();
    let h = client
        .health_check(pb::HealthCheckRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(h.healthy);

    // Without a client certificate the handshake (or the first call) fails.
    let without_cert = TlsOptions {
        ca_cert: Some(pki_dir.join("ca.crt")),
        ..TlsOptions::default()
    };
    let refused = match connect_tls(&target, &without_cert).await {
        Err(_) => true,
        Ok(mut c) => c.health_check(pb::HealthCheckRequest {}).await.is_err(),
    };
    assert!(refused, "a client without a certificate was served");

    // The Unix socket is served too.
    let mut local = node.client().await;
    assert!(
        local
            .health_check(pb::HealthCheckRequest {})
            .await
            .unwrap()
            .into_inner()
            .healthy
    );
    node.terminate();
}
