//! Following one VM's boot: console, guest agent and the no-agent fallback together.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::ReadinessError;
use super::tail::{SerialLogTail, lock};
use crate::qga::QgaClient;
use limiquantix_vm::readiness::{BootPhase, CloudInitStatus, ReadinessTracker};

/// Asks the guest agent for `cloud-init status --format json` once, within `limit`.
/// cloud-init exits non-zero when its status is `error`; the JSON on standard output is read
/// either way.
pub async fn query_cloud_init_status(
    qga: &QgaClient,
    limit: Duration,
) -> Result<CloudInitStatus, ReadinessError> {
    let out = qga
        .exec_wait("cloud-init", &["status", "--format", "json"], limit)
        .await
        .map_err(ReadinessError::Agent)?;
    if out.stdout.is_empty() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(ReadinessError::StatusCommand {
            exit_code: out.exit_code,
            stderr: stderr.chars().take(500).collect(),
        });
    }
    CloudInitStatus::parse(&out.stdout)
        .map_err(|e| ReadinessError::StatusJson { problem: e.problem })
}

/// Settings of [`watch_boot`].
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How long after the console says cloud-init finished the agent may stay silent before the
    /// verdict comes from the console alone.
    pub agent_grace: Duration,
    /// The time limit of one `cloud-init status` call through the agent.
    pub agent_call_limit: Duration,
    /// The pause between two reads of the serial log when nothing new was written.
    pub poll: Duration,
    /// How long after its agent opened a guest may show no cloud-init on its console before
    /// the agent is asked for cloud-init's status instead (every [`WatchOptions::agent_poll`]).
    pub silent_console: Duration,
    /// The pause between two status questions to the agent of a guest whose console is silent.
    pub agent_poll: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            agent_grace: Duration::from_secs(30),
            agent_call_limit: Duration::from_secs(20),
            poll: Duration::from_millis(100),
            silent_console: Duration::from_secs(30),
            agent_poll: Duration::from_secs(10),
        }
    }
}

/// Follows a VM's boots for as long as it runs: tails `tail`'s serial log into `tracker`, asks
/// the guest agent for cloud-init's verdict once the console says cloud-init finished, falls
/// back to the console's verdict after [`WatchOptions::agent_grace`], and calls `on_change`
/// with every phase change. When `agent_opened` is notified (QMP `VSERPORT_CHANGE` with `open:
/// true`) the agent is only pinged: `cloud-init status` is a Python process in the guest, so it
/// is not run while cloud-init works, unless the console stays silent about cloud-init for
/// [`WatchOptions::silent_console`] after the agent opened (then it is asked every
/// [`WatchOptions::agent_poll`]). Never returns on its own except on a serial-log read error:
/// abort its task when QEMU exits.
pub async fn watch_boot(
    mut tail: SerialLogTail,
    tracker: Arc<Mutex<ReadinessTracker>>,
    qga: Arc<QgaClient>,
    agent_opened: Option<Arc<tokio::sync::Notify>>,
    opts: WatchOptions,
    mut on_change: impl FnMut(&BootPhase) + Send,
) -> Result<(), ReadinessError> {
    // When the console first said "finished" in the current boot, if it did.
    let mut finished_since: Option<tokio::time::Instant> = None;
    let mut ask_agent = false;
    // When the agent channel opened, and when the agent was last asked for cloud-init's status.
    let mut agent_open_since: Option<tokio::time::Instant> = None;
    let mut agent_opened_now = false;
    let mut last_asked: Option<tokio::time::Instant> = None;
    loop {
        if std::mem::take(&mut agent_opened_now) {
            agent_open_since.get_or_insert_with(tokio::time::Instant::now);
            let ping = tokio::time::timeout(opts.agent_call_limit, qga.ping()).await;
            let change = match ping {
                Ok(Ok(())) => lock(&tracker).agent_responded(),
                _ => None,
            };
            if let Some(phase) = change {
                on_change(&phase);
            }
        }
        let lines = tail.read_available().await?;
        let changes: Vec<BootPhase> = {
            let mut t = lock(&tracker);
            lines.iter().filter_map(|l| t.feed_line(l)).collect()
        };
        for phase in &changes {
            on_change(phase);
        }
        let wants_verdict = lock(&tracker).wants_agent_verdict();
        if !wants_verdict {
            finished_since = None;
        } else if finished_since.is_none() {
            finished_since = Some(tokio::time::Instant::now());
            ask_agent = true;
        }
        // A guest whose console says nothing of cloud-init: ask its agent, now and then.
        let silent = {
            let t = lock(&tracker);
            !t.phase().is_terminal() && t.cloud_init_version().is_none()
        };
        if silent
            && agent_open_since.is_some_and(|t| t.elapsed() >= opts.silent_console)
            && last_asked.is_none_or(|t| t.elapsed() >= opts.agent_poll)
        {
            ask_agent = true;
        }
        if ask_agent {
            ask_agent = false;
            last_asked = Some(tokio::time::Instant::now());
            let not_terminal = !lock(&tracker).phase().is_terminal();
            if not_terminal {
                let answer = query_cloud_init_status(&qga, opts.agent_call_limit).await;
                let change = match answer {
                    Ok(status) => lock(&tracker).apply_cloud_init_status(&status),
                    Err(e) => {
                        tracing::debug!(error = %e, "no cloud-init verdict from the guest agent yet");
                        None
                    }
                };
                if let Some(phase) = change {
                    on_change(&phase);
                }
            }
        }
        // Still undecided after the console said "finished": ask again, or give up on the agent.
        let undecided = finished_since.filter(|_| lock(&tracker).wants_agent_verdict());
        if let Some(since) = undecided {
            if since.elapsed() >= opts.agent_grace {
                let change = lock(&tracker).conclude_from_serial();
                if let Some(phase) = change {
                    on_change(&phase);
                }
            } else {
                ask_agent = true;
            }
        }
        let pause = if ask_agent {
            Duration::from_secs(2).max(opts.poll)
        } else {
            opts.poll
        };
        match &agent_opened {
            Some(n) => {
                tokio::select! {
                    () = n.notified() => agent_opened_now = true,
                    () = tokio::time::sleep(pause) => {}
                }
            }
            None => tokio::time::sleep(pause).await,
        }
    }
}
