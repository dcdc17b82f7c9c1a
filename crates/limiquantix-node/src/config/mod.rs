//! Daemon configuration: a TOML file, `LQ_*` environment variables and command-line flags.
//!
//! Each source yields a [`Layer`] (every setting optional); the layers are applied in the order
//! file < environment < flags, a later one replacing a setting (lists and the pool table are
//! replaced whole, not merged), and what is still unset takes the documented default
//! ([`Config::resolve`]). `packaging/limiquantix-node.toml` is the annotated example file.

mod allow;
mod control_plane;
mod http;
mod layer;
mod model;
mod resolve;
mod serde_secs;
#[cfg(test)]
mod tests;

pub use allow::{Cidr, describe as describe_allow_list};
pub use control_plane::{
    ControlPlane, ControlPlaneLayer, DEFAULT_HEARTBEAT_INTERVAL_SECS, MAX_HEARTBEAT_INTERVAL_SECS,
};
pub use http::{HttpConfig, HttpLayer};
pub use layer::{Layer, parse_pools};
pub use model::{
    Config, ConfigError, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_RUN_DIR, DEFAULT_STATE_DIR,
    DEFAULT_STOP_TIMEOUT_SECS, ListenAddr, LogFormat, PLAINTEXT_SCHEME, SOCKET_NAME, TlsFiles,
};
