//! TLS files, read and checked before tonic sees them, so an unusable file is reported with what
//! is wrong with it (tonic says only "transport error").
//!
//! Keys: Ed25519, ECDSA P-256 and P-384, RSA of 2048 to 8192 bits (what rustls' *ring* provider
//! signs with), as PKCS#8 (`BEGIN PRIVATE KEY`), SEC1 (`BEGIN EC PRIVATE KEY`) or PKCS#1
//! (`BEGIN RSA PRIVATE KEY`) PEM, unencrypted. Both the daemon's server identity and a client's
//! certificate (mTLS) are loaded with [`load_identity`]; CA bundles with [`load_ca`].

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use tonic::transport::{Certificate, Identity};

/// The key types and encodings that work, for error messages.
pub const SUPPORTED_KEYS: &str = "Ed25519, ECDSA P-256 or P-384, or RSA of 2048 to 8192 bits, \
     unencrypted PEM: PKCS#8 (BEGIN PRIVATE KEY), SEC1 (BEGIN EC PRIVATE KEY) or PKCS#1 \
     (BEGIN RSA PRIVATE KEY)";

/// Why a TLS file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    /// The file could not be read.
    #[error("cannot read the {what} {path:?}: {source}")]
    Read {
        /// Which file ("certificate", "private key", "CA certificate").
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not PEM text, or its PEM is malformed.
    #[error(
        "the {what} {path:?} is not valid PEM ({problem}); DER files convert with `openssl x509 -inform der` or `openssl pkey -inform der`"
    )]
    NotPem {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What the PEM reader found wrong.
        problem: String,
    },
    /// The file holds no certificate.
    #[error(
        "the {what} {path:?} holds no certificate (found: {found}); expected a BEGIN CERTIFICATE block"
    )]
    NoCertificate {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The PEM blocks it does hold.
        found: String,
    },
    /// A certificate in the file cannot be parsed or used.
    #[error("the {what} {path:?} holds a certificate that cannot be used: {problem}")]
    BadCertificate {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The key file holds no private key.
    #[error(
        "the private key {path:?} holds no private key (found: {found}); expected {SUPPORTED_KEYS}"
    )]
    NoKey {
        /// Its path.
        path: PathBuf,
        /// The PEM blocks it does hold.
        found: String,
    },
    /// The key is encrypted with a passphrase.
    #[error(
        "the private key {path:?} is encrypted with a passphrase, which is not supported: write it unencrypted (`openssl pkey -in KEY -out PLAIN`) and keep it readable only by its owner"
    )]
    EncryptedKey {
        /// Its path.
        path: PathBuf,
    },
    /// The key's type or size is not supported.
    #[error(
        "the private key {path:?} ({kind}) cannot be used: {problem}; supported: {SUPPORTED_KEYS}"
    )]
    UnsupportedKey {
        /// Its path.
        path: PathBuf,
        /// The key's type as far as it can be told ("Ed448", "ECDSA P-521", ...).
        kind: &'static str,
        /// What the crypto provider said.
        problem: String,
    },
    /// The key does not belong to the certificate.
    #[error(
        "the private key {key:?} does not belong to the certificate {cert:?} (their public keys differ)"
    )]
    KeyMismatch {
        /// The certificate.
        cert: PathBuf,
        /// The key.
        key: PathBuf,
    },
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError::Read {
        what,
        path: path.into(),
        source,
    })
}

/// The labels of the PEM blocks in `pem` (`CERTIFICATE`, `PRIVATE KEY`, ...).
fn pem_labels(pem: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(pem)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .map(str::to_owned)
        .collect()
}

fn not_pem(what: &'static str, path: &Path) -> TlsFileError {
    TlsFileError::NotPem {
        what,
        path: path.into(),
        problem: "no -----BEGIN ...----- line".into(),
    }
}

/// The certificates of a PEM file, at least one, each a well-formed X.509 certificate.
fn certificates(
    what: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let labels = pem_labels(pem);
    if labels.is_empty() {
        return Err(not_pem(what, path));
    }
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsFileError::NotPem {
            what,
            path: path.into(),
            problem: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsFileError::NoCertificate {
            what,
            path: path.into(),
            found: labels.join(", "),
        });
    }
    Ok(certs)
}

/// The private key of a PEM file, loaded by the crypto provider tonic uses.
fn private_key(
    path: &Path,
    pem: &[u8],
) -> Result<std::sync::Arc<dyn rustls::sign::SigningKey>, TlsFileError> {
    let labels = pem_labels(pem);
    if labels.is_empty() {
        return Err(not_pem("private key", path));
    }
    let text = String::from_utf8_lossy(pem);
    if labels.iter().any(|l| l.contains("ENCRYPTED")) || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(TlsFileError::EncryptedKey { path: path.into() });
    }
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsFileError::NoKey {
            path: path.into(),
            found: labels.join(", "),
        },
        e => TlsFileError::NotPem {
            what: "private key",
            path: path.into(),
            problem: e.to_string(),
        },
    })?;
    let kind = key_kind(&der);
    rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsFileError::UnsupportedKey {
            path: path.into(),
            kind,
            problem: e.to_string(),
        })
}

/// Object identifiers (DER, tag and length included) that name a key's type, most specific
/// first: an EC key names both `id-ecPublicKey` and its curve.
const KEY_OIDS: &[(&[u8], &str)] = &[
    (&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23], "ECDSA P-521"),
    (&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22], "ECDSA P-384"),
    (
        &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a],
        "ECDSA secp256k1",
    ),
    (
        &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
        "ECDSA P-256",
    ),
    (
        &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01],
        "EC on another curve",
    ),
    (&[0x06, 0x03, 0x2b, 0x65, 0x71], "Ed448"),
    (&[0x06, 0x03, 0x2b, 0x65, 0x70], "Ed25519"),
    (
        &[0x06, 0x03, 0x2b, 0x65, 0x6e],
        "X25519, a key-agreement key",
    ),
    (&[0x06, 0x03, 0x2b, 0x65, 0x6f], "X448, a key-agreement key"),
    (
        &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a,
        ],
        "RSA-PSS",
    ),
    (
        &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
        ],
        "RSA",
    ),
    (
        &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01],
        "DSA",
    ),
];

/// The key's type as far as its encoding tells (for error messages only).
fn key_kind(der: &PrivateKeyDer<'_>) -> &'static str {
    let bytes = match der {
        PrivateKeyDer::Pkcs1(_) => return "RSA",
        PrivateKeyDer::Sec1(k) => k.secret_sec1_der(),
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der(),
        _ => return "unknown type",
    };
    KEY_OIDS
        .iter()
        .find(|(oid, _)| bytes.windows(oid.len()).any(|w| w == *oid))
        .map_or("unknown type", |(_, kind)| kind)
}

/// Reads a certificate (chain) and its private key, checks that the key is of a supported type
/// and belongs to the certificate, and returns them as a tonic [`Identity`].
pub fn load_identity(cert: &Path, key: &Path) -> Result<Identity, TlsFileError> {
    let cert_pem = read("certificate", cert)?;
    let key_pem = read("private key", key)?;
    let chain = certificates("certificate", cert, &cert_pem)?;
    let signing_key = private_key(key, &key_pem)?;
    match rustls::sign::CertifiedKey::new(chain, signing_key).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsFileError::KeyMismatch {
                cert: cert.into(),
                key: key.into(),
            });
        }
        Err(e) => {
            return Err(TlsFileError::BadCertificate {
                what: "certificate",
                path: cert.into(),
                problem: e.to_string(),
            });
        }
    }
    Ok(Identity::from_pem(cert_pem, key_pem))
}

/// Reads a PEM bundle of CA certificates (at least one, each usable as a trust anchor).
pub fn load_ca(path: &Path) -> Result<Certificate, TlsFileError> {
    const WHAT: &str = "CA certificate";
    let pem = read(WHAT, path)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(WHAT, path, &pem)? {
        roots.add(cert).map_err(|e| TlsFileError::BadCertificate {
            what: WHAT,
            path: path.into(),
            problem: e.to_string(),
        })?;
    }
    Ok(Certificate::from_pem(pem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_kinds() {
        let pem = b"junk\n-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n\
                    -----BEGIN EC PARAMETERS-----\n";
        assert_eq!(pem_labels(pem), ["CERTIFICATE", "EC PARAMETERS"]);
        let ed448 = PrivateKeyDer::Pkcs8(vec![0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x71].into());
        assert_eq!(key_kind(&ed448), "Ed448");
    }
}
