//! The limiquantix node daemon as a library: configuration, the gRPC service and its parts.
//! The binary (`src/main.rs`) only parses flags, sets up logging and calls [`server::run`].
//!
//! - [`config`] / [`cli`]: TOML file < `LQ_*` environment < flags.
//! - [`server`]: listeners (Unix socket, TCP with TLS, plaintext TCP filtered by [`accept`]'s
//!   allow-list), health, reflection, graceful shutdown.
//! - [`service`]: `NodeDaemonService` over a [`limiquantix_vm::VmBackend`] (the binary picks
//!   the QEMU backend; nothing else here knows which backend runs the VMs).
//! - [`console`]: `NodeConsoleService`, a VM's interactive serial console; [`images`]: the image
//!   library; [`image_service`]: `NodeImageService` over it.
//! - [`translate`]: wire types ↔ the VM model; [`provision`]: the seed decision.
//! - [`confine`]: host paths must stay inside pools and the images directory; [`pools`]: the
//!   storage pools (configured and made by InitStoragePool), persisted.
//! - [`error`]: [`error::ApiError`], the one mapping of errors to gRPC codes.
//! - [`cluster`]: joining a LimiQuantix control plane (registration, heartbeats), started by the
//!   binary when one is configured.
//! - [`hostinfo`], [`fault`]: host facts, crash-test injection points.
//! - [`deadline`]: the caller's `grpc-timeout` carried into queued work; [`fdlimit`]: the
//!   open-file limit raised for many VMs.

pub mod accept;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod confine;
pub mod console;
pub mod deadline;
pub mod error;
pub mod fault;
pub mod fdlimit;
pub mod hostinfo;
pub mod http;
pub mod image_service;
pub mod images;
pub mod metrics;
pub mod pools;
pub mod provision;
pub mod server;
pub mod service;
pub mod translate;
