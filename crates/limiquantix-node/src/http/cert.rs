//! The HTTPS listener's certificate: the operator's (`[http] cert`/`key`), or a self-signed one
//! made at the first start and kept in `<state>/http/` (both files 0600), reused from then on.
//! Its SHA-256 fingerprint is what `lqctl node info` shows, so an operator can compare it with
//! what a browser or the control plane sees.

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File name of the self-signed certificate under `<state>/http/`.
pub const CERT_FILE: &str = "tls-cert.pem";
/// File name of its key.
pub const KEY_FILE: &str = "tls-key.pem";

/// Why the certificate cannot be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file cannot be read or written.
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// Generating the self-signed certificate failed.
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(String),
    /// rustls refused the certificate and key.
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
}

/// The certificate in use.
#[derive(Clone)]
pub struct ServerCert {
    /// The rustls configuration of the listener.
    pub tls: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate's DER, lower-case hex pairs joined by `:`.
    pub fingerprint: String,
    /// Where the certificate is.
    pub cert_path: PathBuf,
    /// Whether the daemon made it.
    pub self_signed: bool,
}

/// The fingerprint of a DER certificate, `ab:cd:…`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Loads the operator's certificate, or the self-signed one of `state_dir` (made when missing).
/// Blocking: call from blocking context.
pub fn load_or_make(
    state_dir: &Path,
    operator: Option<(&Path, &Path)>,
    hostname: &str,
    ips: &[IpAddr],
) -> Result<ServerCert, CertError> {
    let (cert_path, key_path, self_signed) = match operator {
        Some((c, k)) => (c.to_path_buf(), k.to_path_buf(), false),
        None => {
            let dir = state_dir.join("http");
            let (c, k) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
            if !c.exists() || !k.exists() {
                make(&dir, &c, &k, hostname, ips)?;
            }
            (c, k, true)
        }
    };
    let file_err = |path: &Path, e: &dyn std::fmt::Display| CertError::File {
        path: path.to_path_buf(),
        problem: e.to_string(),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| file_err(&cert_path, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&cert_path, &e))?;
    let Some(leaf) = certs.first() else {
        return Err(file_err(&cert_path, &"no PEM certificate in the file"));
    };
    let fingerprint = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| file_err(&key_path, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CertError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| CertError::Config(e.to_string()))?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServerCert {
        tls: Arc::new(tls),
        fingerprint,
        cert_path,
        self_signed,
    })
}

/// Makes the self-signed certificate (ECDSA P-256; names: the host name, `localhost`, `ips`).
fn make(
    dir: &Path,
    cert: &Path,
    key: &Path,
    hostname: &str,
    ips: &[IpAddr],
) -> Result<(), CertError> {
    let gen_err = |e: rcgen::Error| CertError::Generate(e.to_string());
    let mut names = vec!["localhost".to_string()];
    if !hostname.is_empty() && hostname != "localhost" {
        names.push(hostname.to_string());
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(gen_err)?;
    params.subject_alt_names.extend(
        ips.iter()
            .filter(|ip| !ip.is_unspecified())
            .map(|ip| rcgen::SanType::IpAddress(*ip)),
    );
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("limiquantix-node {hostname}"),
    );
    let pair = rcgen::KeyPair::generate().map_err(gen_err)?;
    let made = params.self_signed(&pair).map_err(gen_err)?;
    limiquantix_fs::create_private_dir(dir).map_err(|e| CertError::File {
        path: dir.to_path_buf(),
        problem: e.source.to_string(),
    })?;
    for (path, text) in [(key, pair.serialize_pem()), (cert, made.pem())] {
        limiquantix_fs::write_atomic(path, text.as_bytes(), 0o600).map_err(|e| {
            CertError::File {
                path: path.to_path_buf(),
                problem: e.to_string(),
            }
        })?;
    }
    tracing::info!(cert = %cert.display(), "made a self-signed certificate for the HTTPS listener");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_reused_with_private_files() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let ips = ["127.0.0.1".parse().unwrap()];
        let first = load_or_make(dir.path(), None, "h1", &ips).unwrap();
        let second = load_or_make(dir.path(), None, "h1", &ips).unwrap();
        assert_eq!(first.fingerprint, second.fingerprint, "reused, not remade");
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        for f in [CERT_FILE, KEY_FILE] {
            let mode = std::fs::metadata(dir.path().join("http").join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
}
