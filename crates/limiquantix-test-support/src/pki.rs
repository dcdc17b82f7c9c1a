//! Certificates and keys of every type, made with `openssl` in the test: a CA, server
//! certificates for 127.0.0.1 and client certificates signed by it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A key type and PEM encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// Ed25519, PKCS#8.
    Ed25519,
    /// ECDSA P-256, PKCS#8.
    P256,
    /// ECDSA P-256, SEC1 (`EC PRIVATE KEY`).
    P256Sec1,
    /// ECDSA P-384, PKCS#8.
    P384,
    /// ECDSA P-384, SEC1.
    P384Sec1,
    /// RSA 2048, PKCS#8.
    Rsa,
    /// RSA 2048, PKCS#1 (`RSA PRIVATE KEY`).
    RsaPkcs1,
}

impl Key {
    /// Every type and encoding the daemon and lqctl accept.
    pub const ALL: [Key; 7] = [
        Key::Ed25519,
        Key::P256,
        Key::P256Sec1,
        Key::P384,
        Key::P384Sec1,
        Key::Rsa,
        Key::RsaPkcs1,
    ];

    fn genpkey(self) -> &'static [&'static str] {
        match self {
            Key::Ed25519 => &["-algorithm", "ED25519"],
            Key::P256 | Key::P256Sec1 => {
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
            }
            Key::P384 | Key::P384Sec1 => {
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]
            }
            Key::Rsa | Key::RsaPkcs1 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        }
    }

    /// The PEM label the key file must carry.
    pub fn label(self) -> &'static str {
        match self {
            Key::P256Sec1 | Key::P384Sec1 => "EC PRIVATE KEY",
            Key::RsaPkcs1 => "RSA PRIVATE KEY",
            _ => "PRIVATE KEY",
        }
    }
}

/// Runs `openssl ARGS` in `dir`; fails the test with openssl's stderr when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `NAME.key` in `dir`, of type `key`, and returns its path.
pub fn make_key(dir: &Path, name: &str, key: Key) -> PathBuf {
    let file = format!("{name}.key");
    if key.label() == "PRIVATE KEY" {
        openssl(
            dir,
            &[&["genpkey"][..], key.genpkey(), &["-out", &file]].concat(),
        );
    } else {
        let pkcs8 = format!("{name}.pkcs8");
        openssl(
            dir,
            &[&["genpkey"][..], key.genpkey(), &["-out", &pkcs8]].concat(),
        );
        openssl(dir, &["pkey", "-in", &pkcs8, "-traditional", "-out", &file]);
    }
    let path = dir.join(&file);
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(
        pem.starts_with(&format!("-----BEGIN {}-----", key.label())),
        "{key:?}: {pem}"
    );
    path
}

/// A CA in its own directory (`ca.crt`, `ca.key`) that signs certificates.
pub struct Pki {
    /// The directory of every file.
    pub dir: PathBuf,
}

impl Pki {
    /// A CA with a key of type `key`, in `dir` (created).
    pub fn new(dir: &Path, key: Key) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        make_key(dir, "ca", key);
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=lq test CA",
            ],
        );
        Pki { dir: dir.into() }
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A server certificate for 127.0.0.1, ::1 and localhost: (`NAME.crt`, `NAME.key`).
    pub fn server(&self, name: &str, key: Key) -> (PathBuf, PathBuf) {
        self.sign(
            name,
            key,
            "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
    }

    /// A client certificate: (`NAME.crt`, `NAME.key`).
    pub fn client(&self, name: &str, key: Key) -> (PathBuf, PathBuf) {
        self.sign(name, key, "extendedKeyUsage=clientAuth\n")
    }

    fn sign(&self, name: &str, key: Key, ext: &str) -> (PathBuf, PathBuf) {
        let key_path = make_key(&self.dir, name, key);
        let (csr, crt, extfile) = (
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        std::fs::write(self.dir.join(&extfile), ext).unwrap();
        let subj = format!("/CN=lq-{name}");
        let key_file = format!("{name}.key");
        openssl(
            &self.dir,
            &[
                "req", "-new", "-key", &key_file, "-out", &csr, "-subj", &subj,
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &extfile,
            ],
        );
        (self.dir.join(crt), key_path)
    }
}
