//! TLS keys of every type: the daemon serves with an Ed25519, ECDSA P-256/P-384 or RSA key, as
//! PKCS#8, SEC1 or PKCS#1 PEM, and accepts client certificates of every one of them (mTLS);
//! an unusable file is refused with what is wrong with it. Certificates are made by `openssl`.

mod common;

use common::Node;
use limiquantix_proto::tls::{load_ca, load_identity};
use limiquantix_proto::v1 as pb;
use limiquantix_proto::{TlsOptions, connect_tls};
use limiquantix_test_support::pki::{Key, Pki, make_key, openssl};
use std::path::Path;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tls_args(port: u16, cert: &Path, key: &Path, ca: &Path) -> Vec<String> {
    vec![
        "--listen".into(),
        format!("tcp:127.0.0.1:{port}"),
        "--tls-cert".into(),
        cert.display().to_string(),
        "--tls-key".into(),
        key.display().to_string(),
        "--tls-client-ca".into(),
        ca.display().to_string(),
    ]
}

/// For each key type: a CA and a server certificate of that type, and clients of every type.
/// (Several threads: the clients' connections close while the test waits for the daemon.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_type_serves_and_authenticates_clients() {
    for server_key in Key::ALL {
        let mut node = Node::new();
        let pki = Pki::new(&node.root.join("pki"), server_key);
        let (cert, key) = pki.server("server", server_key);
        let clients: Vec<_> = Key::ALL
            .into_iter()
            .map(|k| (k, pki.client(&format!("client-{k:?}"), k)))
            .collect();
        let port = free_port();
        // The TCP listener first: listeners are bound in order, so it is up once the Unix
        // socket (which the harness waits for) appears.
        let unix = format!("unix:{}", node.socket().display());
        node.args = [
            tls_args(port, &cert, &key, &pki.ca()),
            vec!["--listen".into(), unix],
        ]
        .concat();
        node.start();
        for (client_key, (client_cert, client_key_file)) in clients {
            let options = TlsOptions {
                ca_cert: Some(pki.ca()),
                client_cert: Some(client_cert),
                client_key: Some(client_key_file),
                domain: None,
            };
            let what = format!("server key {server_key:?}, client key {client_key:?}");
            let mut client = connect_tls(&format!("tcp:127.0.0.1:{port}"), &options)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}\n{}", node.log_text()));
            let health = client.health_check(pb::HealthCheckRequest {}).await;
            let health = health.unwrap_or_else(|e| panic!("{what}: {e:?}\n{}", node.log_text()));
            assert!(!health.into_inner().version.is_empty(), "{what}");
        }
        node.terminate();
    }
}

/// The loader names what is wrong with each kind of unusable file.
#[test]
fn unusable_files_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::new(&d.join("pki"), Key::P256);
    let (cert, key) = pki.server("server", Key::P256);
    let (_, other_key) = pki.server("other", Key::P256);
    let rsa = make_key(d, "rsa", Key::RsaPkcs1);
    let p = |f: &str| d.join(f);
    openssl(
        d,
        &[
            "pkey",
            "-in",
            &key.display().to_string(),
            "-aes256",
            "-passout",
            "pass:x",
            "-out",
            "enc.key",
        ],
    );
    openssl(
        d,
        &[
            "pkey",
            "-in",
            "rsa.key",
            "-traditional",
            "-aes256",
            "-passout",
            "pass:x",
            "-out",
            "enc-trad.key",
        ],
    );
    openssl(
        d,
        &[
            "pkey",
            "-in",
            &key.display().to_string(),
            "-outform",
            "DER",
            "-out",
            "der.key",
        ],
    );
    openssl(d, &["genpkey", "-algorithm", "ED448", "-out", "ed448.key"]);
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-521",
            "-out",
            "p521.key",
        ],
    );
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
            "rsa1024.key",
        ],
    );
    let cases: [(&Path, &Path, &[&str]); 9] = [
        (&cert, &p("enc.key"), &["is encrypted with a passphrase"]),
        (
            &cert,
            &p("enc-trad.key"),
            &["is encrypted with a passphrase"],
        ),
        (
            &cert,
            &cert,
            &["holds no private key", "found: CERTIFICATE"],
        ),
        (&key, &key, &["holds no certificate", "found: PRIVATE KEY"]),
        (&cert, &p("der.key"), &["is not valid PEM"]),
        (&cert, &other_key, &["does not belong to the certificate"]),
        (
            &cert,
            &p("ed448.key"),
            &["(Ed448) cannot be used", "supported: Ed25519"],
        ),
        (&cert, &p("p521.key"), &["(ECDSA P-521) cannot be used"]),
        (
            &cert,
            &p("rsa1024.key"),
            &["(RSA) cannot be used", "2048 to 8192"],
        ),
    ];
    for (c, k, expected) in cases {
        let err = load_identity(c, k).unwrap_err().to_string();
        for e in expected {
            assert!(err.contains(e), "{} / {}: {err}", c.display(), k.display());
        }
    }
    assert!(
        load_identity(&cert, &rsa).is_err(),
        "an RSA key for an EC certificate"
    );
    let err = load_identity(&cert, &p("none.key"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot read the private key"), "{err}");
    let err = load_ca(&key).unwrap_err().to_string();
    assert!(
        err.contains("CA certificate") && err.contains("holds no certificate"),
        "{err}"
    );
    load_ca(&pki.ca()).unwrap();
}

/// The daemon refuses to start with an unusable key and says why.
#[test]
fn the_daemon_names_an_unusable_key_at_start() {
    let mut node = Node::new();
    let pki = Pki::new(&node.root.join("pki"), Key::Ed25519);
    let (cert, key) = pki.server("server", Key::Ed25519);
    let (_, other_key) = pki.server("other", Key::Ed25519);
    let encrypted = pki.dir.join("enc.key");
    openssl(
        &pki.dir,
        &[
            "pkey",
            "-in",
            "server.key",
            "-aes256",
            "-passout",
            "pass:x",
            "-out",
            "enc.key",
        ],
    );
    for (bad_key, expected) in [
        (&encrypted, "is encrypted with a passphrase"),
        (&other_key, "does not belong to the certificate"),
    ] {
        node.args = tls_args(free_port(), &cert, bad_key, &pki.ca());
        let (status, log) = node.run_expecting_refusal();
        assert!(!status.success(), "{log}");
        assert!(log.contains(expected), "{expected}: {log}");
    }
    assert!(key.exists());
}
