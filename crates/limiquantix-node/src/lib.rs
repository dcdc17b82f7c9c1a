//! The limiquantix node daemon as a library: configuration, the gRPC service and its parts.
//! The binary (`src/main.rs`) only parses flags, sets up logging and calls [`server::run`].
//!
//! - [`config`] / [`cli`]: TOML file < `LQ_*` environment < flags.
//! - [`server`]: listeners (Unix socket, TCP with TLS), health, reflection, graceful shutdown.
//! - [`service`]: `NodeDaemonService` over a [`backend::VmBackend`].
//! - [`console`]: `NodeConsoleService`, a VM's interactive serial console; [`images`]: the image
//!   library and `NodeImageService`.
//! - [`translate`]: wire types ↔ the hypervisor's model; [`provision`]: the seed decision.
//! - [`confine`]: host paths must stay inside pools and the images directory.
//! - [`status`]: the one mapping of errors to gRPC codes.
//! - [`hostinfo`], [`logtail`], [`fault`]: host facts, log tails, crash-test injection points.

pub mod backend;
pub mod cli;
pub mod config;
pub mod confine;
pub mod console;
pub mod fault;
pub mod hostinfo;
pub mod images;
pub mod logtail;
pub mod provision;
pub mod qemu;
pub mod server;
pub mod service;
pub mod status;
pub mod translate;
