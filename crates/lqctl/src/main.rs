//! `lqctl`: the limiquantix-node command line.
//!
//! `main` only parses the command line and dispatches; each command group lives in its own
//! module. Every failure ends as one line on stderr (`lqctl: ...`) and a non-zero exit.

mod console;
mod create;
mod ctx;
mod daemon;
mod device;
mod guest;
mod image;
mod logs;
mod lookup;
mod metrics;
mod migrate;
mod node;
mod node_http;
mod output;
mod pool;
mod rawmode;
mod resolve;
mod seed;
mod snapshot;
mod storage_view;
mod summary;
mod units;
mod view;
mod vm;
mod volume;
mod wait;

use std::path::PathBuf;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::ctx::Ctx;
use crate::daemon::{DEFAULT_SOCKET, Daemon, Target};
use crate::output::Format;

/// Heading of the options every command takes.
const GLOBAL: &str = "Global options";

/// The limiquantix-node command line: VMs, images, storage and the node, over the daemon's API.
#[derive(Debug, Parser)]
#[command(name = "lqctl", version, about, propagate_version = true)]
struct Cli {
    /// The daemon: a Unix socket path (or unix:PATH), or https://HOST:PORT for TCP with TLS.
    #[arg(long, global = true, env = "LQ_SOCKET", default_value = DEFAULT_SOCKET, value_name = "ADDR", hide_env_values = true, help_heading = GLOBAL)]
    socket: String,
    /// CA certificate (PEM) that signed the daemon's certificate (https addresses).
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL)]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS (https addresses).
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL)]
    tls_cert: Option<PathBuf>,
    /// Client key (PEM) for mTLS (https addresses).
    #[arg(long, global = true, value_name = "FILE", help_heading = GLOBAL)]
    tls_key: Option<PathBuf>,
    /// Output format: table for people; json or yaml for scripts.
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Table, help_heading = GLOBAL)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, start, stop, watch and delete VMs.
    #[command(subcommand)]
    Vm(vm::VmCommand),
    /// Import, list and delete the node's images.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Create, list, inspect and delete storage pools (local directories, NFS shares).
    #[command(subcommand)]
    Pool(pool::PoolCommand),
    /// Create, list, grow, copy, snapshot and delete the volumes of a pool.
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Stream the node's events (VM started, stopped, ...) until Ctrl-C.
    Events(node::EventsArgs),
    /// The node: host facts, hypervisor and daemon (node info).
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Write a NoCloud seed image (a drop-in for cloud-localds).
    Seed(Box<seed::SeedArgs>),
    /// Print the version of lqctl and of the daemon when it answers.
    Version,
    /// Print a shell completion script (e.g. lqctl completion bash > /etc/bash_completion.d/lqctl).
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> std::process::ExitCode {
    quiet_panics();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Seed(args) => seed::run(*args),
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "lqctl", &mut std::io::stdout());
            Ok(())
        }
        command => {
            let target = Target {
                address: cli.socket,
                tls_ca: cli.tls_ca,
                tls_cert: cli.tls_cert,
                tls_key: cli.tls_key,
            };
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(run(command, target, cli.output)))
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if guest::exit_code(&e).is_some() => {
            std::process::ExitCode::from(guest::exit_code(&e).unwrap_or(1))
        }
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("lqctl: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Panics end as one line, never a backtrace; a closed stdout (`lqctl vm list | head -1`) ends
/// the command quietly, like other Unix tools. (SIGPIPE stays ignored: sockets rely on it.)
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        eprintln!(
            "lqctl: internal error: {} (please report it)",
            msg.replace('\n', " ")
        );
        std::process::exit(101);
    }));
}

async fn run(command: Command, target: Target, format: Format) -> anyhow::Result<()> {
    if let Command::Version = command {
        return node::version(&target, format).await;
    }
    let ctx = Ctx {
        daemon: Daemon::connect(&target).await?,
        format,
        colour: output::colour_enabled(),
    };
    match command {
        Command::Vm(c) => vm::run(&ctx, c).await,
        Command::Image(c) => image::run(&ctx, c).await,
        Command::Pool(c) => pool::run(&ctx, c).await,
        Command::Volume(c) => volume::run(&ctx, c).await,
        Command::Events(a) => node::events(&ctx, a).await,
        Command::Node(c) => node::run(&ctx, c).await,
        Command::Seed(_) | Command::Version | Command::Completion { .. } => Ok(()),
    }
}
