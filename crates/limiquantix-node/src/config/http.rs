//! The HTTP face's settings (`[http]`, `--http-listen`, `--image-http-listen`): the HTTPS
//! listener of the control plane's Add Host, VM tabs and image downloads, and the plain HTTP
//! listener of the image downloads only. Both are off unless set, and both take connections
//! from the allow-list only.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// One source's `[http]` settings; everything optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpLayer {
    /// `listen`: `IP:PORT` of the HTTPS listener (the control plane uses port 8443).
    pub listen: Option<String>,
    /// `image_listen`: `IP:PORT` of the plain HTTP listener of image downloads (port 8080).
    pub image_listen: Option<String>,
    /// `cert`: PEM certificate of the HTTPS listener (default: self-signed, in the state dir).
    pub cert: Option<PathBuf>,
    /// `key`: PEM private key of `cert`.
    pub key: Option<PathBuf>,
}

impl HttpLayer {
    /// `self` with every setting `over` has replaced by `over`'s.
    pub fn overlay(self, over: HttpLayer) -> HttpLayer {
        HttpLayer {
            listen: over.listen.or(self.listen),
            image_listen: over.image_listen.or(self.image_listen),
            cert: over.cert.or(self.cert),
            key: over.key.or(self.key),
        }
    }
}

/// The resolved HTTP settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HttpConfig {
    /// The HTTPS listener (Add Host, VM tabs, image downloads). Default: none (off).
    pub listen: Option<SocketAddr>,
    /// The plain HTTP listener (image downloads only). Default: none (off).
    pub image_listen: Option<SocketAddr>,
    /// The operator's certificate; `None`: a self-signed one kept in the state directory.
    pub cert: Option<PathBuf>,
    /// The key of `cert`.
    pub key: Option<PathBuf>,
}

impl HttpConfig {
    /// Whether any HTTP listener is configured.
    pub fn enabled(&self) -> bool {
        self.listen.is_some() || self.image_listen.is_some()
    }

    /// Checks and resolves a merged layer.
    pub fn resolve(layer: HttpLayer) -> Result<HttpConfig, String> {
        let addr = |key: &str, v: Option<String>| -> Result<Option<SocketAddr>, String> {
            match v.filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => s.parse().map(Some).map_err(|_| {
                    format!("{key}: {s:?} is not IP:PORT (for example 10.0.0.5:8443)")
                }),
            }
        };
        let listen = addr("listen", layer.listen)?;
        let image_listen = addr("image_listen", layer.image_listen)?;
        if listen.is_some() && listen == image_listen {
            return Err("listen and image_listen are the same address".into());
        }
        match (&layer.cert, &layer.key) {
            (Some(_), None) | (None, Some(_)) => {
                return Err("cert and key go together: set both or neither".into());
            }
            (Some(_), Some(_)) if listen.is_none() => {
                return Err("cert and key are set but no HTTPS listen address".into());
            }
            _ => {}
        }
        Ok(HttpConfig {
            listen,
            image_listen,
            cert: layer.cert,
            key: layer.key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_files_are_checked() {
        let ok = HttpConfig::resolve(HttpLayer {
            listen: Some("127.0.0.1:8443".into()),
            image_listen: Some("127.0.0.1:8080".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(ok.enabled());
        let bad = HttpConfig::resolve(HttpLayer {
            listen: Some("host:8443".into()),
            ..Default::default()
        });
        assert!(bad.unwrap_err().contains("is not IP:PORT"));
        let half = HttpConfig::resolve(HttpLayer {
            listen: Some("127.0.0.1:8443".into()),
            cert: Some("/c.pem".into()),
            ..Default::default()
        });
        assert!(half.unwrap_err().contains("go together"));
        assert!(!HttpConfig::resolve(HttpLayer::default()).unwrap().enabled());
    }
}
