//! `vm wait`: polls a VM's status until it is running or ready, showing the phase on a spinner.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use limiquantix_proto::v1::{BootPhase, VmStatusResponse};

use crate::ctx::Ctx;
use crate::lookup;
use crate::units::human_duration;
use crate::view::state_name;

/// What `vm wait` waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WaitFor {
    /// QEMU runs the VM.
    Running,
    /// cloud-init finished in the guest without errors (the daemon's boot phase `ready`).
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

/// Reads the phase from a status: the power state, and while running the boot phase the daemon
/// reports (it reads the serial console and asks the guest agent for cloud-init's verdict).
pub fn phase(vm: &VmStatusResponse) -> Phase {
    let state = state_name(vm.state);
    let running = state == "running";
    let boot = vm.boot.as_ref().filter(|_| running);
    let Some(boot) = boot else {
        let failed = (state == "crashed").then(|| format!("VM {} crashed", vm.name));
        return Phase {
            label: state,
            running,
            ready: false,
            failed,
        };
    };
    let label = if boot.description.is_empty() {
        state
    } else {
        boot.description.clone()
    };
    Phase {
        label,
        running,
        ready: boot.phase() == BootPhase::Ready,
        failed: (boot.phase() == BootPhase::Failed)
            .then(|| format!("VM {} did not boot: {}", vm.name, boot.failure)),
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
        let current = lookup::status(ctx, &vm.vm_id).await?;
        let p = phase(&current);
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
                human_duration(timeout),
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

#[cfg(test)]
mod tests {
    use super::*;
    use limiquantix_proto::v1::{BootProgress, PowerState};

    fn vm(state: PowerState) -> VmStatusResponse {
        VmStatusResponse {
            name: "web1".into(),
            state: state as i32,
            ..Default::default()
        }
    }

    fn booting(phase: BootPhase, description: &str, failure: &str) -> VmStatusResponse {
        VmStatusResponse {
            boot: Some(BootProgress {
                phase: phase as i32,
                description: description.into(),
                failure: failure.into(),
                ..Default::default()
            }),
            ..vm(PowerState::Running)
        }
    }

    #[test]
    fn phases_from_state_and_boot_progress() {
        assert_eq!(phase(&vm(PowerState::Stopped)).label, "stopped");
        assert!(phase(&vm(PowerState::Crashed)).failed.is_some());
        assert_eq!(phase(&vm(PowerState::Running)).label, "running");
        let p = phase(&booting(
            BootPhase::CloudInitRunning,
            "cloud-init init-local",
            "",
        ));
        assert!(p.running && !p.ready, "{p:?}");
        assert_eq!(p.label, "cloud-init init-local");
        let p = phase(&booting(BootPhase::Ready, "ready", ""));
        assert!(p.ready && p.failed.is_none(), "{p:?}");
        let p = phase(&booting(
            BootPhase::Failed,
            "failed: nothing bootable (No bootable device.)",
            "nothing bootable (No bootable device.)",
        ));
        assert_eq!(
            p.failed.as_deref(),
            Some("VM web1 did not boot: nothing bootable (No bootable device.)")
        );
        // A boot phase left over on a stopped VM is not reported.
        let stale = VmStatusResponse {
            state: PowerState::Stopped as i32,
            ..booting(BootPhase::Ready, "ready", "")
        };
        assert_eq!(phase(&stale).label, "stopped");
    }
}
