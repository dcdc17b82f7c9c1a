//! `lqctl vm migrate NAME --to ADDR`: a live migration to another node's daemon, followed
//! with a progress bar (phase, percent, bytes sent); the guest's measured downtime at the end.

use anyhow::{anyhow, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use limiquantix_proto::v1::{MigrateVmRequest, MigrationPhase, MigrationProgress};
use std::time::Duration;

use crate::ctx::Ctx;
use crate::daemon::CallExt as _;
use crate::lookup::find;

/// `vm migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
    /// The target daemon's API address: `unix:PATH` for a daemon on this host, or
    /// `https://HOST:PORT` for another node's TLS listener (both daemons need their TLS files).
    #[arg(long = "to", value_name = "ADDR")]
    pub to: String,
    /// Copy the VM's local disks too (storage migration).
    #[arg(long)]
    pub storage: bool,
    /// Bandwidth limit in MiB/s (no limit when absent).
    #[arg(long, value_name = "MIB_PER_SEC")]
    pub bandwidth: Option<u64>,
    /// The longest the guest may stand still at switchover, in milliseconds (default 300).
    #[arg(long = "max-downtime", value_name = "MS")]
    pub max_downtime: Option<u32>,
}

/// The request `args` make for VM `vm_id`.
fn request(vm_id: String, a: &MigrateArgs) -> anyhow::Result<MigrateVmRequest> {
    let bandwidth = match a.bandwidth {
        Some(0) => bail!("--bandwidth: 0 MiB/s: give at least 1, or leave it out for no limit"),
        Some(m) => m
            .checked_mul(1 << 20)
            .ok_or_else(|| anyhow!("--bandwidth: {m} MiB/s is too large"))?,
        None => 0,
    };
    Ok(MigrateVmRequest {
        vm_id,
        target_node_uri: a.to.clone(),
        live: true,
        storage: a.storage,
        max_bandwidth_bytes_per_sec: bandwidth,
        max_downtime_ms: a.max_downtime.unwrap_or(0),
    })
}

fn phase_name(p: MigrationPhase) -> &'static str {
    match p {
        MigrationPhase::Preparing => "preparing",
        MigrationPhase::Transferring => "transferring",
        MigrationPhase::Switching => "switching over",
        MigrationPhase::Complete => "complete",
        MigrationPhase::Failed => "failed",
    }
}

fn bar() -> ProgressBar {
    let bar = ProgressBar::new(100);
    bar.set_style(
        ProgressStyle::with_template("{msg:>16} [{bar:30}] {pos:>3}% {prefix}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Runs `vm migrate`.
pub async fn run(ctx: &Ctx, a: MigrateArgs) -> anyhow::Result<()> {
    let vm = find(ctx, &a.vm).await?;
    let req = request(vm.vm_id.clone(), &a)?;
    let mut stream = ctx
        .daemon
        .node()
        .migrate_vm(req)
        .await
        .or_fail(&ctx.daemon)?;
    let bar = bar();
    let mut last: Option<MigrationProgress> = None;
    loop {
        match stream.message().await {
            Ok(Some(p)) => {
                bar.set_message(phase_name(p.phase()));
                bar.set_position(u64::from(p.percent_complete));
                bar.set_prefix(format!("{} MiB sent", p.data_transferred_bytes >> 20));
                last = Some(p);
            }
            Ok(None) => break,
            Err(s) => {
                bar.abandon();
                return Err(ctx.daemon.error(&s));
            }
        }
    }
    bar.finish_and_clear();
    match last {
        Some(p) if p.phase() == MigrationPhase::Complete => {
            println!(
                "{}: migrated to {} (downtime {} ms)",
                vm.name, a.to, p.downtime_ms
            );
            Ok(())
        }
        Some(p) if p.phase() == MigrationPhase::Failed => {
            bail!("{}: migration failed: {}", vm.name, p.error)
        }
        _ => bail!(
            "{}: the daemon ended the migration without a result",
            vm.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(bandwidth: Option<u64>) -> MigrateArgs {
        MigrateArgs {
            vm: "web1".into(),
            to: "unix:/run/b.sock".into(),
            storage: false,
            bandwidth,
            max_downtime: Some(200),
        }
    }

    #[test]
    fn flags_become_the_request() {
        let r = request("id".into(), &args(Some(8))).unwrap();
        assert_eq!(r.max_bandwidth_bytes_per_sec, 8 << 20);
        assert_eq!(r.max_downtime_ms, 200);
        assert!(r.live);
        assert_eq!(
            request("id".into(), &args(None))
                .unwrap()
                .max_bandwidth_bytes_per_sec,
            0
        );
        assert!(request("id".into(), &args(Some(0))).is_err());
    }
}
