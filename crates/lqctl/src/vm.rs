//! `lqctl vm ...`: lifecycle, listing, logs and waiting.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::time::{Duration, SystemTime};

use anyhow::bail;
use clap::{Args, Subcommand};
use limiquantix_proto::v1::{StopVmRequest, VmIdRequest, VmStatusResponse};

use crate::console::{self, ConsoleArgs};
use crate::create::{self, CreateArgs};
use crate::ctx::Ctx;
use crate::daemon::CallExt as _;
use crate::guest;
use crate::logs;
use crate::lookup::{find, list_vms, status};
use crate::output::{Format, print_structured};
use crate::summary::print_summary;
use crate::units::parse_duration;
use crate::view::{VmView, state_name, vm_details, vm_table};
use crate::wait::{self, WaitFor};

/// VM commands. A VM is named by its name, its id, or a prefix of its id that is unique.
#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Define a VM from a cloud image (or an ISO); optionally start it and wait until it is ready.
    Create(Box<CreateArgs>),
    /// List the VMs: name, id, state, CPUs, memory, IPs, uptime.
    #[command(visible_alias = "ls")]
    List,
    /// Show one VM in detail.
    Show(VmArg),
    /// Start a VM.
    Start(StartArgs),
    /// Stop a VM: ask the guest to power off (ACPI, or its agent with --guest), or --force.
    #[command(visible_alias = "shutdown")]
    Stop(StopArgs),
    /// Reset a running VM.
    Reboot(VmArg),
    /// Freeze a running VM's vCPUs.
    Pause(VmArg),
    /// Let a paused VM run again.
    Resume(VmArg),
    /// Delete a stopped VM and the disks the daemon created for it (never its base image).
    #[command(visible_alias = "rm")]
    Delete(DeleteArgs),
    /// Attach to the VM's serial console: type into the guest, see its output.
    ///
    /// On a terminal, the terminal goes raw (every key, Ctrl-C included, goes to the guest) and
    /// Ctrl-] detaches; the VM keeps running. Without a terminal on stdin (a pipe, a script),
    /// stdin's bytes are sent as they are and lqctl detaches --linger after stdin ends, or as
    /// soon as the guest prints --until's text. The session also ends when the VM stops. One
    /// client at a time: attaching while another session is open is refused. --log prints the
    /// serial log and exits without attaching; `lqctl vm logs -f` follows it read-only.
    Console(ConsoleArgs),
    /// Print the last lines of a VM's serial console log (or QEMU's own log with --qemu).
    Logs(LogsArgs),
    /// Wait until a VM is running, or ready (cloud-init done), with a spinner.
    Wait(WaitArgs),
    /// Take, list, revert to and delete snapshots.
    #[command(subcommand)]
    Snapshot(crate::snapshot::SnapshotCommand),
    /// Attach and detach disks (hot-plugged while the VM runs).
    #[command(subcommand)]
    Disk(crate::device::DiskCommand),
    /// Attach and detach network interfaces (hot-plugged while the VM runs).
    #[command(subcommand)]
    Nic(crate::device::NicCommand),
    /// Run a command in the guest through its agent; its exit code becomes lqctl's.
    ///
    /// `lqctl vm exec NAME -- CMD ARGS...`: an argv, no shell (`-- sh -c '...'` for one); its
    /// standard output and error are written through (each cut at 1 MiB).
    Exec(guest::ExecArgs),
    /// Copy a file between this machine and a guest: `lqctl vm cp ./f web1:/root/f`.
    Cp(guest::CpArgs),
    /// Freeze the guest's filesystems (thawed automatically after --timeout).
    Fsfreeze(guest::FreezeArgs),
    /// Thaw the guest's filesystems.
    Fsthaw(VmArg),
    /// A live table of the running VMs' CPU, memory, disk and network, refreshed each second.
    Top(crate::metrics::TopArgs),
    /// Move a running VM to another node's daemon (live), with a progress bar.
    Migrate(crate::migrate::MigrateArgs),
}

/// One VM.
#[derive(Debug, Args)]
pub struct VmArg {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
}

/// `vm start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
    /// Then wait until the VM is ready (cloud-init done).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, value_parser = parse_duration, default_value = "10m", value_name = "DURATION")]
    pub timeout: Duration,
}

/// `vm stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
    /// How long the guest gets to power off (e.g. 30s, 2m); the daemon's default when absent.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// End the VM's process at once, without asking the guest.
    #[arg(long)]
    pub force: bool,
    /// Ask the guest's agent to power off (returns once the guest took the request).
    #[arg(long, conflicts_with = "force")]
    pub guest: bool,
}

/// `vm delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
    /// Stop the VM first (at once) if it runs.
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `vm logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
    /// How many trailing lines (at most 1000).
    #[arg(short = 'n', long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub lines: u32,
    /// Keep printing new lines as they come (Ctrl-C to stop).
    #[arg(short, long)]
    pub follow: bool,
    /// QEMU's own log instead of the guest's serial console.
    #[arg(long)]
    pub qemu: bool,
}

/// `vm wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
    /// What to wait for.
    #[arg(long = "for", value_enum, default_value_t = WaitFor::Running)]
    pub until: WaitFor,
    /// Give up after this long (e.g. 90s, 10m).
    #[arg(long, value_parser = parse_duration, default_value = "10m", value_name = "DURATION")]
    pub timeout: Duration,
}

/// Runs a VM command.
pub async fn run(ctx: &Ctx, command: VmCommand) -> anyhow::Result<()> {
    match command {
        VmCommand::Create(args) => create::run(ctx, *args).await,
        VmCommand::List => list(ctx).await,
        VmCommand::Show(a) => show(ctx, &a.vm).await,
        VmCommand::Start(a) => {
            let vm = find(ctx, &a.vm).await?;
            ctx.daemon
                .node()
                .start_vm(id(&vm))
                .await
                .or_fail(&ctx.daemon)?;
            if a.wait {
                let r = wait::wait(ctx, &vm, WaitFor::Ready, a.timeout).await?;
                print_summary(ctx, &r.vm, Some((&r.label, r.took)));
            } else {
                done(ctx, &vm, "started");
            }
            Ok(())
        }
        VmCommand::Stop(a) => {
            let vm = find(ctx, &a.vm).await?;
            let mut node = ctx.daemon.node();
            if a.guest {
                return guest::shutdown(ctx, &a.vm, false).await;
            }
            if a.force {
                node.force_stop_vm(id(&vm)).await.or_fail(&ctx.daemon)?;
            } else {
                let timeout_seconds = a
                    .timeout
                    .map(|t| u32::try_from(t.as_secs()).unwrap_or(u32::MAX).max(1))
                    .unwrap_or(0);
                node.stop_vm(StopVmRequest {
                    vm_id: vm.vm_id.clone(),
                    timeout_seconds,
                })
                .await
                .or_fail(&ctx.daemon)?;
            }
            done(ctx, &vm, "stopped");
            Ok(())
        }
        VmCommand::Reboot(a) => simple(ctx, &a.vm, Simple::Reboot).await,
        VmCommand::Pause(a) => simple(ctx, &a.vm, Simple::Pause).await,
        VmCommand::Resume(a) => simple(ctx, &a.vm, Simple::Resume).await,
        VmCommand::Delete(a) => delete(ctx, a).await,
        VmCommand::Snapshot(c) => crate::snapshot::run(ctx, c).await,
        VmCommand::Disk(c) => crate::device::run_disk(ctx, c).await,
        VmCommand::Nic(c) => crate::device::run_nic(ctx, c).await,
        VmCommand::Exec(a) => guest::exec(ctx, a).await,
        VmCommand::Cp(a) => guest::cp(ctx, a).await,
        VmCommand::Fsfreeze(a) => guest::freeze(ctx, a).await,
        VmCommand::Fsthaw(a) => guest::thaw(ctx, &a.vm).await,
        VmCommand::Top(a) => crate::metrics::top(ctx, a).await,
        VmCommand::Migrate(a) => crate::migrate::run(ctx, a).await,
        VmCommand::Console(a) => {
            let vm = find(ctx, &a.vm).await?;
            if a.log {
                logs::show(ctx, &vm, 1000, false, false).await
            } else {
                console::attach(ctx, &vm, &a).await
            }
        }
        VmCommand::Logs(a) => {
            let vm = find(ctx, &a.vm).await?;
            logs::show(ctx, &vm, a.lines, a.follow, a.qemu).await
        }
        VmCommand::Wait(a) => {
            let vm = find(ctx, &a.vm).await?;
            let r = wait::wait(ctx, &vm, a.until, a.timeout).await?;
            print_summary(ctx, &r.vm, Some((&r.label, r.took)));
            Ok(())
        }
    }
}

fn id(vm: &VmStatusResponse) -> VmIdRequest {
    VmIdRequest {
        vm_id: vm.vm_id.clone(),
    }
}

/// Prints `NAME  WHAT` (table) or the VM's view (json/yaml) after a lifecycle command.
fn done(ctx: &Ctx, vm: &VmStatusResponse, what: &str) {
    match ctx.format {
        Format::Table => println!("{}  {what}", vm.name),
        f => {
            let _ = print_structured(
                &serde_json::json!({ "id": vm.vm_id, "name": vm.name, "result": what }),
                f,
            );
        }
    }
}

/// Lifecycle calls that take only the VM.
#[derive(Clone, Copy, Debug)]
enum Simple {
    Reboot,
    Pause,
    Resume,
}

async fn simple(ctx: &Ctx, query: &str, op: Simple) -> anyhow::Result<()> {
    let vm = find(ctx, query).await?;
    let mut node = ctx.daemon.node();
    let req = id(&vm);
    let (result, what) = match op {
        Simple::Reboot => (node.reboot_vm(req).await, "rebooted"),
        Simple::Pause => (node.pause_vm(req).await, "paused"),
        Simple::Resume => (node.resume_vm(req).await, "resumed"),
    };
    result.or_fail(&ctx.daemon)?;
    done(ctx, &vm, what);
    Ok(())
}

async fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let now = SystemTime::now();
    let mut vms: Vec<VmView> = list_vms(ctx)
        .await?
        .iter()
        .map(|v| VmView::new(v, now))
        .collect();
    vms.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    match ctx.format {
        Format::Table if vms.is_empty() => {
            eprintln!("no VMs (create one with: lqctl vm create NAME --image IMAGE)");
        }
        Format::Table => print!("{}", vm_table(&vms, ctx.colour)),
        f => print_structured(&vms, f)?,
    }
    Ok(())
}

async fn show(ctx: &Ctx, query: &str) -> anyhow::Result<()> {
    let vm = find(ctx, query).await?;
    let vm = status(ctx, &vm.vm_id).await?;
    let view = VmView::new(&vm, SystemTime::now());
    match ctx.format {
        Format::Table => print!("{}", vm_details(&view, ctx.colour)),
        f => print_structured(&view, f)?,
    }
    Ok(())
}

async fn delete(ctx: &Ctx, a: DeleteArgs) -> anyhow::Result<()> {
    let vm = find(ctx, &a.vm).await?;
    let state = state_name(vm.state);
    let active = matches!(state.as_str(), "running" | "paused");
    if active && !a.force {
        bail!(
            "VM {} is {state}: stop it first (lqctl vm stop {}) or delete with --force",
            vm.name,
            vm.name
        );
    }
    if !a.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        eprint!(
            "Delete VM {} ({}) and the disks created for it? [y/N] ",
            vm.name, vm.vm_id
        );
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            bail!("not deleted");
        }
    }
    let mut node = ctx.daemon.node();
    if active {
        node.force_stop_vm(id(&vm)).await.or_fail(&ctx.daemon)?;
    }
    node.delete_vm(id(&vm)).await.or_fail(&ctx.daemon)?;
    done(ctx, &vm, "deleted");
    Ok(())
}
