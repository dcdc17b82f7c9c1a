//! Following one VM's boot: console, guest agent and the no-agent fallback together.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::ReadinessError;
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
    let mut state = WatchState::default();
    // Reads in a row that found nothing new: a quiet console is read less often.
    let mut quiet = 0u32;
    loop {
        if std::mem::take(&mut state.agent_opened_now) {
            state
                .agent_open_since
                .get_or_insert_with(tokio::time::Instant::now);
            ping_agent(&tracker, &qga, &opts, &mut on_change).await;
        }
        let lines = tail.read_available().await?;
        quiet = if lines.is_empty() { quiet + 1 } else { 0 };
        feed_console(&tracker, &lines, &mut on_change);
        state.note_console_finished(&tracker);
        state.ask_if_console_silent(&tracker, &opts);
        if state.ask_agent {
            state.ask_agent = false;
            state.last_asked = Some(tokio::time::Instant::now());
            ask_cloud_init_status(&tracker, &qga, &opts, &mut on_change).await;
        }
        state.settle_undecided(&tracker, &opts, &mut on_change);
        let pause = if state.ask_agent {
            Duration::from_secs(2).max(opts.poll)
        } else {
            quiet_pause(opts.poll, quiet)
        };
        state.agent_opened_now = pause_or_agent_opened(agent_opened.as_deref(), pause).await;
    }
}

/// The pause before the next read of a console that was quiet for `quiet` reads: `poll`
/// doubled per quiet read up to [`QUIET_POLL_FACTOR`] × `poll`, so many idle VMs cost few reads
/// while a talking console is read every `poll`.
fn quiet_pause(poll: Duration, quiet: u32) -> Duration {
    let factor = 1u32 << quiet.min(3);
    poll * factor.min(QUIET_POLL_FACTOR)
}

/// How much longer than [`WatchOptions::poll`] the pause after quiet reads may grow.
const QUIET_POLL_FACTOR: u32 = 5;

/// What [`watch_boot`] remembers from one round of its loop to the next.
#[derive(Debug, Default)]
struct WatchState {
    /// When the console first said "finished" in the current boot, if it did.
    finished_since: Option<tokio::time::Instant>,
    /// Whether the agent is to be asked for cloud-init's status in the next round.
    ask_agent: bool,
    /// When the agent channel opened.
    agent_open_since: Option<tokio::time::Instant>,
    /// Whether the agent channel opened during the last pause.
    agent_opened_now: bool,
    /// When the agent was last asked for cloud-init's status.
    last_asked: Option<tokio::time::Instant>,
}

impl WatchState {
    /// Notes when the console first said cloud-init finished (and asks the agent then), or
    /// forgets it when the tracker no longer waits for the agent's verdict.
    fn note_console_finished(&mut self, tracker: &Mutex<ReadinessTracker>) {
        let wants_verdict = lock(tracker).wants_agent_verdict();
        if !wants_verdict {
            self.finished_since = None;
        } else if self.finished_since.is_none() {
            self.finished_since = Some(tokio::time::Instant::now());
            self.ask_agent = true;
        }
    }

    /// A guest whose console says nothing of cloud-init: ask its agent, now and then.
    fn ask_if_console_silent(&mut self, tracker: &Mutex<ReadinessTracker>, opts: &WatchOptions) {
        let silent = {
            let t = lock(tracker);
            !t.phase().is_terminal() && t.cloud_init_version().is_none()
        };
        if silent
            && self
                .agent_open_since
                .is_some_and(|t| t.elapsed() >= opts.silent_console)
            && self
                .last_asked
                .is_none_or(|t| t.elapsed() >= opts.agent_poll)
        {
            self.ask_agent = true;
        }
    }

    /// Still undecided after the console said "finished": ask again, or give up on the agent
    /// once [`WatchOptions::agent_grace`] has passed and take the console's verdict.
    fn settle_undecided(
        &mut self,
        tracker: &Mutex<ReadinessTracker>,
        opts: &WatchOptions,
        on_change: &mut impl FnMut(&BootPhase),
    ) {
        let undecided = self
            .finished_since
            .filter(|_| lock(tracker).wants_agent_verdict());
        if let Some(since) = undecided {
            if since.elapsed() >= opts.agent_grace {
                let change = lock(tracker).conclude_from_serial();
                if let Some(phase) = change {
                    on_change(&phase);
                }
            } else {
                self.ask_agent = true;
            }
        }
    }
}

/// Pings the agent whose channel just opened; an answer is recorded in `tracker`.
async fn ping_agent(
    tracker: &Mutex<ReadinessTracker>,
    qga: &QgaClient,
    opts: &WatchOptions,
    on_change: &mut impl FnMut(&BootPhase),
) {
    let ping = tokio::time::timeout(opts.agent_call_limit, qga.ping()).await;
    let change = match ping {
        Ok(Ok(())) => lock(tracker).agent_responded(),
        _ => None,
    };
    if let Some(phase) = change {
        on_change(&phase);
    }
}

/// Feeds new serial-log lines to `tracker` and reports the phase changes they cause.
fn feed_console(
    tracker: &Mutex<ReadinessTracker>,
    lines: &[String],
    on_change: &mut impl FnMut(&BootPhase),
) {
    let changes: Vec<BootPhase> = {
        let mut t = lock(tracker);
        lines.iter().filter_map(|l| t.feed_line(l)).collect()
    };
    for phase in &changes {
        on_change(phase);
    }
}

/// Asks the agent for cloud-init's status, unless the boot is already decided, and applies the
/// answer to `tracker`; no answer yet is only logged.
async fn ask_cloud_init_status(
    tracker: &Mutex<ReadinessTracker>,
    qga: &QgaClient,
    opts: &WatchOptions,
    on_change: &mut impl FnMut(&BootPhase),
) {
    let not_terminal = !lock(tracker).phase().is_terminal();
    if not_terminal {
        let answer = query_cloud_init_status(qga, opts.agent_call_limit).await;
        let change = match answer {
            Ok(status) => lock(tracker).apply_cloud_init_status(&status),
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

/// Sleeps for `pause`, or less when `agent_opened` is notified; returns whether it was.
async fn pause_or_agent_opened(
    agent_opened: Option<&tokio::sync::Notify>,
    pause: Duration,
) -> bool {
    match agent_opened {
        Some(n) => {
            tokio::select! {
                () = n.notified() => true,
                () = tokio::time::sleep(pause) => false,
            }
        }
        None => {
            tokio::time::sleep(pause).await;
            false
        }
    }
}

#[cfg(test)]
mod quiet_tests {
    use super::*;

    #[test]
    fn a_quiet_console_is_read_less_often_up_to_a_bound() {
        let poll = Duration::from_millis(100);
        let pauses: Vec<u128> = (0..6).map(|q| quiet_pause(poll, q).as_millis()).collect();
        assert_eq!(pauses, [100, 200, 400, 500, 500, 500]);
    }
}
