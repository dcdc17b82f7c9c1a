//! The `[control_plane]` section: the LimiQuantix control plane this node registers with and
//! sends heartbeats to (`--control-plane URL`, `LQ_CONTROL_PLANE`, or the file's `url`).
//! Without a URL the node stays standalone.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Default seconds between two heartbeats (the upstream node's default).
pub const DEFAULT_HEARTBEAT_INTERVAL_SECS: u64 = 30;
/// Longest heartbeat interval allowed: the control plane marks a node disconnected after 90 s
/// without a heartbeat.
pub const MAX_HEARTBEAT_INTERVAL_SECS: u64 = 60;

/// `[control_plane]` as one source gives it; everything optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneLayer {
    /// `url`: the control plane's base URL, `http://HOST:PORT` or `https://...`.
    pub url: Option<String>,
    /// `heartbeat_interval`: seconds between two heartbeats.
    pub heartbeat_interval: Option<u64>,
    /// `management_ip`: the IPv4 address to register instead of the detected one.
    pub management_ip: Option<String>,
}

impl ControlPlaneLayer {
    /// `self` with every key `over` sets replaced by `over`'s.
    pub fn overlay(self, over: ControlPlaneLayer) -> ControlPlaneLayer {
        ControlPlaneLayer {
            url: over.url.or(self.url),
            heartbeat_interval: over.heartbeat_interval.or(self.heartbeat_interval),
            management_ip: over.management_ip.or(self.management_ip),
        }
    }
}

/// The control plane the node joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlPlane {
    /// Base URL, without a trailing `/`; calls go to `{url}/{package}.{Service}/{Method}`.
    pub url: String,
    /// Seconds between two heartbeats. Default 30; 1 to 60.
    #[serde(with = "super::serde_secs")]
    pub heartbeat_interval: Duration,
    /// The management address registered; by default the local address of the route to the
    /// control plane.
    pub management_ip: Option<Ipv4Addr>,
}

impl ControlPlane {
    /// The control plane's address when its URL names a host by IP address: the default
    /// allow-list of the plaintext listeners (it dials from there, unless a proxy or NAT sits
    /// between, in which case `allow_from` says where from). `None` for a DNS name.
    pub fn address(&self) -> Option<IpAddr> {
        let url = reqwest::Url::parse(&self.url).ok()?;
        let host = url.host_str()?;
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    }
}

/// The section, checked; `None` when no URL is set. Errors start with the key.
pub(super) fn resolve(layer: Option<ControlPlaneLayer>) -> Result<Option<ControlPlane>, String> {
    let Some(layer) = layer else {
        return Ok(None);
    };
    let Some(url) = layer.url.filter(|u| !u.trim().is_empty()) else {
        if layer.heartbeat_interval.is_some() || layer.management_ip.is_some() {
            return Err("url: [control_plane] has settings but no url \
                 (--control-plane, LQ_CONTROL_PLANE or [control_plane] url)"
                .into());
        }
        return Ok(None);
    };
    let secs = layer
        .heartbeat_interval
        .unwrap_or(DEFAULT_HEARTBEAT_INTERVAL_SECS);
    if !(1..=MAX_HEARTBEAT_INTERVAL_SECS).contains(&secs) {
        return Err(format!(
            "heartbeat_interval: {secs} s is outside 1-{MAX_HEARTBEAT_INTERVAL_SECS} s \
             (the control plane marks a node disconnected after 90 s without a heartbeat)"
        ));
    }
    let management_ip = match layer.management_ip {
        Some(ip) => Some(ip.trim().parse::<Ipv4Addr>().map_err(|_| {
            format!(
                "management_ip: {ip:?} is not an IPv4 address (the control plane dials \
                 <management_ip>:9090 and cannot use IPv6)"
            )
        })?),
        None => None,
    };
    Ok(Some(ControlPlane {
        url: check_url(url.trim())?,
        heartbeat_interval: Duration::from_secs(secs),
        management_ip,
    }))
}

/// An `http://` or `https://` URL with a host and nothing that would be a secret or be lost
/// (no user or password, query or fragment); returned without a trailing `/`.
fn check_url(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| format!("url {url:?}: {e} (expected http://HOST:PORT)"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("url {url:?}: expected http:// or https://"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("url {url:?}: no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("url: a user or password in the URL is refused \
             (the control plane's API has no authentication)"
            .into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("url {url:?}: a query or fragment is not allowed"));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(url: &str) -> Option<ControlPlaneLayer> {
        Some(ControlPlaneLayer {
            url: Some(url.into()),
            ..Default::default()
        })
    }

    #[test]
    fn urls_are_checked_and_normalised() {
        let cp = resolve(layer("http://10.0.0.1:8080/")).unwrap().unwrap();
        assert_eq!(cp.url, "http://10.0.0.1:8080");
        assert_eq!(cp.heartbeat_interval, Duration::from_secs(30));
        let cp = resolve(layer("https://cp.example/api/")).unwrap().unwrap();
        assert_eq!(cp.url, "https://cp.example/api");
        for bad in [
            "ftp://x",
            "10.0.0.1:8080",
            "http://u:p@x:1",
            "http://x/?a=1",
        ] {
            assert!(resolve(layer(bad)).is_err(), "{bad}");
        }
        assert_eq!(resolve(None), Ok(None));
    }

    #[test]
    fn interval_and_address_are_checked() {
        let mut l = layer("http://cp:8080").unwrap();
        l.heartbeat_interval = Some(0);
        assert!(resolve(Some(l.clone())).unwrap_err().contains("1-60"));
        l.heartbeat_interval = Some(1);
        l.management_ip = Some("fe80::1".into());
        assert!(resolve(Some(l.clone())).unwrap_err().contains("IPv4"));
        l.management_ip = Some("192.168.0.53".into());
        let cp = resolve(Some(l)).unwrap().unwrap();
        assert_eq!(cp.management_ip, Some(Ipv4Addr::new(192, 168, 0, 53)));
        assert_eq!(cp.heartbeat_interval, Duration::from_secs(1));
        let no_url = ControlPlaneLayer {
            heartbeat_interval: Some(5),
            ..Default::default()
        };
        assert!(resolve(Some(no_url)).unwrap_err().contains("no url"));
    }
}
