//! `limiquantix-node`: the node daemon. Parses flags, resolves the configuration
//! (file < environment < flags), sets up logging, opens the QEMU backend (which loads every
//! definition and re-adopts running QEMUs), then serves until SIGTERM/SIGINT. VMs outlive the
//! daemon: stopping it never stops them.

use anyhow::Context as _;
use clap::Parser as _;
use limiquantix_node::cli::Flags;
use limiquantix_node::config::{Config, LogFormat};
use limiquantix_node::service::{Hypervisor, NodeService};
use limiquantix_node::{cluster, fault, hostinfo, server};
use limiquantix_qemu::{BackendConfig, QemuBackend};
use std::sync::Arc;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The QEMU backend's settings from the daemon's configuration. This binary is the one place that
/// chooses the backend; the service speaks to `limiquantix_vm::VmBackend` only.
fn backend_config(config: &Config) -> BackendConfig {
    let mut bc = BackendConfig::new(&config.state_dir, &config.run_dir);
    bc.accel = config.accel;
    bc.qemu_binary = config.qemu_binary.clone();
    bc.qemu_img = config.qemu_img.clone();
    bc.stop_timeout = config.stop_timeout;
    bc.metrics_interval = config.metrics_interval;
    bc.max_concurrent_starts = config.max_concurrent_starts;
    bc.max_concurrent_disk_creations = config.max_concurrent_disk_creations;
    if let Some(probe) = test_kvm_probe() {
        bc.kvm_probe = probe;
    }
    bc
}

/// For tests only: `LQ_TEST_KVM_PROBE=never-exits` (or `exits`) runs that probe program under
/// TCG in place of KVM, with a 1 s limit, so that a KVM probe fails (or succeeds) the same way
/// on every machine.
fn test_kvm_probe() -> Option<limiquantix_qemu::probe::KvmProbe> {
    use limiquantix_qemu::probe::{KvmProbe, ProbeRom};
    let rom = match std::env::var("LQ_TEST_KVM_PROBE").ok()?.as_str() {
        "never-exits" => ProbeRom::NeverExits,
        "exits" => ProbeRom::Exits,
        other => {
            tracing::warn!(
                value = other,
                "ignoring LQ_TEST_KVM_PROBE (allowed: exits, never-exits)"
            );
            return None;
        }
    };
    Some(KvmProbe {
        timeout: std::time::Duration::from_secs(1),
        ..KvmProbe::stand_in(rom)
    })
}

async fn run(config: Config) -> anyhow::Result<()> {
    server::create_dirs(&config)?;
    let qemu_version = hostinfo::qemu_version(&config.qemu_binary).await;
    if qemu_version.is_none() {
        tracing::warn!(qemu = %config.qemu_binary.display(), "QEMU does not run; VMs cannot start");
    }
    limiquantix_node::fdlimit::raise(limiquantix_qemu::backend::vm_capacity);
    let backend = QemuBackend::open(backend_config(&config))
        .await
        .context("opening the QEMU backend")?;
    let choice = backend.accel_choice().clone();
    let hypervisor = Hypervisor {
        qemu_version,
        accel: choice.kind,
        accel_reason: choice.reason,
        probe_millis: choice.probe_millis,
    };
    tracing::info!(
        state_dir = %config.state_dir.display(),
        images_dir = %config.images_dir.display(),
        pools = config.pools.len(),
        accel = hypervisor.accel.qemu_name(),
        accel_reason = %hypervisor.accel_reason,
        qemu = hypervisor.qemu_version.as_deref().unwrap_or("unavailable"),
        "limiquantix-node {} starting",
        env!("CARGO_PKG_VERSION")
    );
    let backend = Arc::new(backend);
    let service = NodeService::new(backend.clone(), config.clone(), hypervisor);
    // In the background: NFS shares the node had mounted and that are gone are mounted again.
    let remount = service.clone();
    tokio::spawn(async move { remount.remount_pools().await });
    if let Some(settings) = &config.control_plane {
        // In the background: serving never waits for the control plane.
        match cluster::spawn(settings.clone(), &config, backend, service.pools()) {
            Ok(status) => service.attach_control_plane(status),
            Err(e) => tracing::error!(error = %e, "the node stays standalone"),
        }
    }
    server::serve(&config, service, server::termination_signal()).await?;
    tracing::info!("stopped; VMs keep running");
    Ok(())
}

fn main() -> std::process::ExitCode {
    let flags = Flags::parse();
    let config = match flags.resolve(std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("limiquantix-node: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if flags.print_config {
        match serde_json::to_string_pretty(&config) {
            Ok(json) => {
                println!("{json}");
                return std::process::ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("limiquantix-node: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    init_logging(config.log_format);
    fault::init_from_env();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("limiquantix-node: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("limiquantix-node: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
