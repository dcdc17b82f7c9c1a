//! `vm wait`: polls a VM's status until it is running or ready, showing the phase on a spinner.

use std::time::{Duration, Instant, SystemTime};

use indicatif::{ProgressBar, ProgressStyle};
use limiquantix_proto::v1::VmStatusResponse;

use crate::Ctx;
use crate::output::{Format, paint_state, print_structured};
use crate::view::{VmView, state_name};

/// What `vm wait` waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WaitFor {
    /// QEMU runs the VM.
    Running,
    /// The guest finished booting: its guest agent answers (cloud-init installed and started it).
    Ready,
}

/// Where a VM stands, as far as waiting goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phase {
    /// For people: "stopped", "booting", "ready", ...
    pub label: String,
    /// QEMU runs it.
    pub running: bool,
    /// The guest is up.
    pub ready: bool,
    /// It cannot get there without help (crashed, or stopped after running).
    pub failed: Option<String>,
}

/// Reads the phase from a status.
pub fn phase(vm: &VmStatusResponse) -> Phase {
    let state = state_name(vm.state);
    let agent = vm.guest_agent.as_ref().is_some_and(|a| a.connected);
    let running = state == "running";
    let (label, failed) = match state.as_str() {
        "running" if agent => ("ready".to_owned(), None),
        "running" => ("booting".to_owned(), None),
        "crashed" => (state.clone(), Some(format!("VM {} crashed", vm.name))),
        _ => (state.clone(), None),
    };
    Phase {
        label,
        running,
        ready: running && agent,
        failed,
    }
}

/// How long a VM may stay stopped while we wait before the wait gives up (it may be starting).
const STOPPED_GRACE: Duration = Duration::from_secs(15);

/// Waits for `until` and returns the VM's status and how long it took; fails on a crash, a VM that stays stopped, or the timeout.
pub async fn wait(
    ctx: &Ctx,
    vm: &VmStatusResponse,
    until: WaitFor,
    timeout: Duration,
) -> anyhow::Result<(VmStatusResponse, Duration)> {
    let started = Instant::now();
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    spinner.enable_steady_tick(Duration::from_millis(120));
    let result = loop {
        let current = crate::vm::status(ctx, &vm.vm_id).await?;
        let p = phase(&current);
        spinner.set_message(format!("{}: {}", vm.name, p.label));
        let reached = match until {
            WaitFor::Running => p.running,
            WaitFor::Ready => p.ready,
        };
        if reached {
            break Ok(current);
        }
        if let Some(why) = p.failed {
            break Err(anyhow::anyhow!(
                "{why} while waiting (lqctl vm logs {} shows its console)",
                vm.name
            ));
        }
        if !p.running && p.label == "stopped" && started.elapsed() > STOPPED_GRACE {
            break Err(anyhow::anyhow!(
                "VM {} is stopped: start it with lqctl vm start {}",
                vm.name,
                vm.name
            ));
        }
        if started.elapsed() > timeout {
            break Err(anyhow::anyhow!(
                "timed out after {} waiting for VM {} to be {} (it is {}; lqctl vm logs {} shows its console)",
                crate::units::human_duration(timeout),
                vm.name,
                match until {
                    WaitFor::Running => "running",
                    WaitFor::Ready => "ready",
                },
                p.label,
                vm.name
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    spinner.finish_and_clear();
    Ok((result?, started.elapsed()))
}

/// Prints the line a finished wait ends with:
/// `web1  running  ready in 31.4s  10.0.2.15  ssh -p 40022 admin@127.0.0.1`.
pub fn print_summary(ctx: &Ctx, vm: &VmStatusResponse, elapsed: Option<Duration>) {
    let view = VmView::new(vm, SystemTime::now());
    if ctx.format != Format::Table {
        let _ = print_structured(&view, ctx.format);
        return;
    }
    let p = phase(vm);
    let mut parts = vec![view.name.clone(), paint_state(&view.state, ctx.colour)];
    parts.push(match elapsed {
        Some(e) => format!("{} after {:.1}s", p.label, e.as_secs_f64()),
        None => p.label.clone(),
    });
    if !view.ips.is_empty() {
        parts.push(view.ips.join(","));
    }
    if let Some(hint) = ssh_hint(vm) {
        parts.push(hint);
    }
    println!("{}", parts.join("  "));
}

/// `ssh -p PORT USER@127.0.0.1` when the VM was created with an SSH port forward (lqctl records
/// it in the `lq.ssh` label as `USER@HOST:PORT`).
fn ssh_hint(vm: &VmStatusResponse) -> Option<String> {
    let v = vm.labels.get(crate::create::SSH_LABEL)?;
    let (user_host, port) = v.rsplit_once(':')?;
    Some(format!("ssh -p {port} {user_host}"))
}
