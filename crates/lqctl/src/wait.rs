//! `vm wait`: polls a VM's status until it is running or ready, showing the phase on a spinner.

use std::time::{Duration, Instant, SystemTime};

use indicatif::{ProgressBar, ProgressStyle};
use limiquantix_hypervisor::readiness::{BootPhase, ReadinessTracker};
use limiquantix_proto::v1::{GetVmLogsRequest, VmStatusResponse};

use crate::Ctx;
use crate::output::{Format, paint_state, print_structured};
use crate::view::{VmView, state_name};

/// What `vm wait` waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WaitFor {
    /// QEMU runs the VM.
    Running,
    /// cloud-init finished in the guest without errors (read from the serial console).
    Ready,
}

/// Where a VM stands, as far as waiting goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phase {
    /// For people: "stopped", "firmware", "kernel running", "cloud-init init", "ready", ...
    pub label: String,
    /// QEMU runs it.
    pub running: bool,
    /// cloud-init finished without errors.
    pub ready: bool,
    /// It cannot get there without help (crashed, nothing bootable, cloud-init errors).
    pub failed: Option<String>,
}

/// Reads the phase from a status and, for a running VM, the tail of its serial console: the
/// hypervisor's `ReadinessTracker` classifies the console lines (firmware, kernel, cloud-init
/// stages, `Cloud-init v. X finished`, fatal boot messages), the same reading the daemon does.
pub fn phase(vm: &VmStatusResponse, serial: Option<&str>) -> Phase {
    let state = state_name(vm.state);
    let running = state == "running";
    if !running {
        let failed = (state == "crashed").then(|| format!("VM {} crashed", vm.name));
        return Phase {
            label: state,
            running,
            ready: false,
            failed,
        };
    }
    let Some(serial) = serial else {
        return Phase {
            label: state,
            running,
            ready: false,
            failed: None,
        };
    };
    let mut tracker = ReadinessTracker::new();
    for line in serial.lines() {
        tracker.feed_line(line);
    }
    tracker.conclude_from_serial();
    let boot = tracker.phase().clone();
    Phase {
        label: boot.to_string(),
        running,
        ready: boot == BootPhase::Ready,
        failed: match &boot {
            BootPhase::Failed { reason } => Some(format!("VM {} did not boot: {reason}", vm.name)),
            _ => None,
        },
    }
}

/// How long a VM may stay stopped while we wait before the wait gives up (it may be starting).
const STOPPED_GRACE: Duration = Duration::from_secs(15);

/// Waits for `until` and returns what was reached; fails on a crash, a VM that stays stopped, or the timeout.
pub async fn wait(
    ctx: &Ctx,
    vm: &VmStatusResponse,
    until: WaitFor,
    timeout: Duration,
) -> anyhow::Result<Reached> {
    let started = Instant::now();
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    spinner.enable_steady_tick(Duration::from_millis(120));
    let result = loop {
        let current = crate::vm::status(ctx, &vm.vm_id).await?;
        let serial = if until == WaitFor::Ready && state_name(current.state) == "running" {
            Some(serial_tail(ctx, &vm.vm_id).await?)
        } else {
            None
        };
        let p = phase(&current, serial.as_deref());
        spinner.set_message(format!("{}: {}", vm.name, p.label));
        let reached = match until {
            WaitFor::Running => p.running,
            WaitFor::Ready => p.ready,
        };
        if reached {
            break Ok(Reached {
                vm: current,
                label: p.label,
                took: started.elapsed(),
            });
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
    result
}

/// What a finished wait reached.
#[derive(Debug)]
pub struct Reached {
    /// The VM's status at that moment.
    pub vm: VmStatusResponse,
    /// The phase reached ("ready", or the boot phase when waiting for running).
    pub label: String,
    /// How long the wait took.
    pub took: Duration,
}

/// The last lines of a VM's serial console.
pub async fn serial_tail(ctx: &Ctx, vm_id: &str) -> anyhow::Result<String> {
    use crate::daemon::CallExt as _;
    let logs = ctx
        .daemon
        .node()
        .get_vm_logs(GetVmLogsRequest {
            vm_id: vm_id.to_owned(),
            lines: 1000,
        })
        .await
        .or_fail(&ctx.daemon)?;
    Ok(logs.serial_log)
}

/// Prints the line a finished wait ends with:
/// `web1  running  ready in 31.4s  ssh -p 40022 admin@127.0.0.1`; json/yaml print the VM view.
pub fn print_summary(ctx: &Ctx, vm: &VmStatusResponse, reached: Option<(&str, Duration)>) {
    let view = VmView::new(vm, SystemTime::now());
    if ctx.format != Format::Table {
        let _ = print_structured(&view, ctx.format);
        return;
    }
    let mut parts = vec![view.name.clone(), paint_state(&view.state, ctx.colour)];
    match reached {
        Some((label, took)) if label != view.state => {
            parts.push(format!(
                "{} in {:.1}s",
                paint_state(label, ctx.colour),
                took.as_secs_f64()
            ));
        }
        Some((_, took)) => parts.push(format!("after {:.1}s", took.as_secs_f64())),
        None => {}
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use limiquantix_proto::v1::PowerState;

    fn vm(state: PowerState) -> VmStatusResponse {
        VmStatusResponse {
            name: "web1".into(),
            state: state as i32,
            ..Default::default()
        }
    }

    const BOOT: &str = "SeaBIOS (version 1.16.2-debian-1.16.2-1)\n\
        Booting from Hard Disk...\n\
        [    0.000000] Linux version 6.1.0-27-amd64 (debian-kernel@lists.debian.org)\n\
        [    4.100000] cloud-init[301]: Cloud-init v. 22.4.2 running 'init-local' at Thu, 26 Nov 2026 18:00:01 +0000. Up 4.00 seconds.\n";

    #[test]
    fn phases_from_state_and_console() {
        assert_eq!(phase(&vm(PowerState::Stopped), None).label, "stopped");
        assert!(phase(&vm(PowerState::Crashed), None).failed.is_some());
        let running = vm(PowerState::Running);
        assert_eq!(phase(&running, None).label, "running");
        let p = phase(&running, Some(BOOT));
        assert!(p.running && !p.ready, "{p:?}");
        assert_eq!(p.label, "cloud-init init-local");
        let done = format!(
            "{BOOT}[   30.000000] cloud-init[700]: Cloud-init v. 22.4.2 finished at Thu, 26 Nov 2026 18:00:30 +0000. Datasource DataSourceNoCloud [seed=/dev/sr0][dsmode=net].  Up 30.00 seconds\n"
        );
        let p = phase(&running, Some(&done));
        assert!(p.ready, "{p:?}");
        let stuck = "SeaBIOS (version 1.16.2)\nNo bootable device.\n";
        let p = phase(&running, Some(stuck));
        assert!(
            p.failed
                .as_deref()
                .unwrap_or_default()
                .contains("did not boot"),
            "{p:?}"
        );
    }
}
