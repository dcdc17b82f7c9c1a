//! The `limiquantix.node.v1` gRPC contract.
//!
//! The protobuf definition lives in `proto/limiquantix/node/v1/node_daemon.proto`; it is compiled
//! at build time with `protox` (no system `protoc`), and this crate re-exports the generated prost
//! messages and the tonic client and server of `NodeDaemonService`. Beside it, in their own
//! files and services so `NodeDaemonService` stays wire-identical to upstream, are the
//! extensions of limiquantix-node: `NodeImageService` (`images.proto`, the image library) and
//! `NodeConsoleService` (`console.proto`, a VM's interactive serial console), both in [`v1`].
//!
//! The daemon is also a client of the LimiQuantix control plane, whose Connect JSON API carries
//! upstream's own messages: [`compute::v1`] (RegisterNode, UpdateHeartbeat, SyncNodeVMs, ...)
//! and [`storage::v1`] (ScanLocalImages), messages only, with protojson `serde` implementations.
//!
//! Clients connect over the Unix socket ([`connect`]), TLS ([`connect_tls`]) or a plaintext
//! listener ([`connect_plaintext`]); [`tls`] reads certificates and keys with errors that say
//! what is wrong with them, for the clients and the daemon alike.
//!
//! Connecting a client to a daemon over its Unix socket:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut client =
//!     limiquantix_proto::connect("unix:/run/limiquantix/limiquantix-node.sock").await?;
//! let health = client
//!     .health_check(limiquantix_proto::v1::HealthCheckRequest {})
//!     .await?
//!     .into_inner();
//! assert!(health.healthy);
//! # Ok(()) }
//! ```

pub mod client;
pub mod compute;
pub mod storage;
pub mod tls;
pub mod v1;

pub use client::{ClientError, NodeClient, TlsOptions, connect, connect_plaintext, connect_tls};

/// The encoded `FileDescriptorSet` of the node API (with `google/protobuf` dependencies), for
/// gRPC server reflection (`tonic_reflection::server::Builder::register_encoded_file_descriptor_set`).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(
    env!("OUT_DIR"),
    "/limiquantix_node_v1_descriptor.bin"
));

/// The fully qualified service name, as health checks and reflection name it.
pub const SERVICE_NAME: &str = "limiquantix.node.v1.NodeDaemonService";

/// The fully qualified name of the serial console service (an extension of limiquantix-node).
pub const CONSOLE_SERVICE_NAME: &str = "limiquantix.node.v1.NodeConsoleService";

/// Most bytes of the serial log AttachConsole replays (`ConsoleAttach.replay_bytes` is reduced
/// to it; see `console.proto`).
pub const MAX_CONSOLE_REPLAY_BYTES: u32 = 64 * 1024;
