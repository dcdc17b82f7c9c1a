//! lqctl's client certificates of every key type (Ed25519, ECDSA P-256/P-384, RSA; PKCS#8, SEC1
//! and PKCS#1 PEM) against a daemon that requires mTLS, and one-line errors that say what is
//! wrong with an unusable key. Certificates are made by `openssl`.

mod common;

use common::{TestDaemon, eventually, free_port};
use limiquantix_test_support::pki::{Key, Pki, openssl};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

fn lqctl(address: &str, ca: &Path, cert: &Path, key: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lqctl"))
        .args(["--socket", address, "--tls-ca"])
        .arg(ca)
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .args(["image", "list", "-o", "json"])
        .output()
        .unwrap()
}

#[test]
fn client_keys_of_every_type() {
    let dir = tempfile::tempdir().unwrap();
    // An Ed25519 CA and server: the client keys below are checked against both kinds of peer.
    let pki = Pki::new(&dir.path().join("pki"), Key::Ed25519);
    let (server_cert, server_key) = pki.server("server", Key::Ed25519);
    let clients: Vec<_> = Key::ALL
        .into_iter()
        .map(|k| (k, pki.client(&format!("client-{k:?}"), k)))
        .collect();
    let port = free_port();
    let p = |p: &Path| p.display().to_string();
    let d = TestDaemon::start_with(
        dir,
        &[
            "--listen".into(),
            format!("tcp:127.0.0.1:{port}"),
            "--tls-cert".into(),
            p(&server_cert),
            "--tls-key".into(),
            p(&server_key),
            "--tls-client-ca".into(),
            p(&pki.ca()),
        ],
    );
    let address = format!("https://127.0.0.1:{port}");
    let (_, (first_cert, first_key)) = &clients[0];
    let up = eventually(Duration::from_secs(20), || {
        lqctl(&address, &pki.ca(), first_cert, first_key)
            .status
            .success()
    });
    assert!(up, "the TLS listener never answered:\n{}", d.log());
    for (key, (cert, key_file)) in &clients {
        let out = lqctl(&address, &pki.ca(), cert, key_file);
        assert!(
            out.status.success(),
            "client key {key:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]", "{key:?}");
    }

    // Unusable keys: one line that names the file and what is wrong, before any connection.
    let (cert, key) = &clients[1].1;
    let encrypted = pki.dir.join("encrypted.key");
    openssl(
        &pki.dir,
        &[
            "pkey",
            "-in",
            &p(key),
            "-aes256",
            "-passout",
            "pass:x",
            "-out",
            "encrypted.key",
        ],
    );
    let (_, other_key) = &clients[2].1;
    for (bad, expected) in [
        (&encrypted, "is encrypted with a passphrase"),
        (other_key, "does not belong to the certificate"),
        (cert, "holds no private key (found: CERTIFICATE)"),
    ] {
        let out = lqctl(&address, &pki.ca(), cert, bad);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with("lqctl: --tls-cert/--tls-key: ")
                && err.contains(expected)
                && err.contains(&p(bad))
                && err.lines().count() == 1,
            "{err}"
        );
    }
}
