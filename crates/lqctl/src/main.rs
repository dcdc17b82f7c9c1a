//! `lqctl`: the limiquantix-node command line.
//!
//! `main` only parses the command line and dispatches; each command group lives in its own
//! module.

mod seed;

use clap::{Parser, Subcommand};

/// The limiquantix-node command line.
#[derive(Debug, Parser)]
#[command(name = "lqctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a NoCloud seed image (a drop-in for cloud-localds).
    Seed(seed::SeedArgs),
    /// Print the lqctl version.
    Version,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Seed(args) => seed::run(args),
        Command::Version => {
            println!("lqctl {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lqctl: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
