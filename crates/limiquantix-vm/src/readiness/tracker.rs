//! The pure readiness state machine: console events and the agent's verdict in, phases out.

use super::console::{ConsoleEvent, classify_console_line};
use super::phase::{BootFailure, BootPhase, CloudInitStage};
use super::verdict::{CloudInitState, CloudInitStatus};

/// How many cloud-init problem lines the tracker keeps per boot.
const MAX_PROBLEMS: usize = 20;

/// Follows one VM's boot phases from console lines and the guest agent's verdict.
#[derive(Debug, Clone)]
pub struct ReadinessTracker {
    phase: BootPhase,
    cloud_init_version: Option<String>,
    datasource: Option<String>,
    problems: Vec<String>,
    agent_answered: bool,
}

impl Default for ReadinessTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl ReadinessTracker {
    /// A tracker for a QEMU process that just started.
    pub fn new() -> Self {
        Self {
            phase: BootPhase::QemuStarted,
            cloud_init_version: None,
            datasource: None,
            problems: Vec::new(),
            agent_answered: false,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> &BootPhase {
        &self.phase
    }

    /// cloud-init's version, once it printed a stage banner.
    pub fn cloud_init_version(&self) -> Option<&str> {
        self.cloud_init_version.as_deref()
    }

    /// The datasource cloud-init reported on its final line (`DataSourceNone` means it found no
    /// seed and the guest is unconfigured).
    pub fn datasource(&self) -> Option<&str> {
        self.datasource.as_deref()
    }

    /// Failure lines cloud-init printed on the console during this boot.
    pub fn console_problems(&self) -> &[String] {
        &self.problems
    }

    /// Whether the guest agent has answered during this boot.
    pub fn agent_answered(&self) -> bool {
        self.agent_answered
    }

    /// Whether the consumer should now ask the guest agent for cloud-init's verdict: the console
    /// says cloud-init finished and no verdict is known yet.
    pub fn wants_agent_verdict(&self) -> bool {
        self.phase
            == BootPhase::CloudInitRunning {
                stage: CloudInitStage::Finished,
            }
    }

    /// Feeds one console line; returns the new phase when it changed.
    pub fn feed_line(&mut self, line: &str) -> Option<BootPhase> {
        let event = classify_console_line(line)?;
        self.apply_console_event(event)
    }

    /// Applies a classified console event; returns the new phase when it changed.
    pub fn apply_console_event(&mut self, event: ConsoleEvent) -> Option<BootPhase> {
        match event {
            ConsoleEvent::FirmwareBanner => {
                // A banner after the kernel ran means the guest rebooted: a new boot.
                self.reset();
                self.set(BootPhase::Firmware)
            }
            ConsoleEvent::BootLoader => self.advance(BootPhase::Firmware),
            ConsoleEvent::NothingBootable(message) => {
                if self.phase.rank() >= BootPhase::KernelRunning.rank() {
                    return None;
                }
                self.set(BootPhase::Failed {
                    reason: BootFailure::NothingBootable { message },
                })
            }
            ConsoleEvent::KernelStarted => {
                self.reset();
                self.set(BootPhase::KernelRunning)
            }
            ConsoleEvent::KernelPanic(message) => self.set(BootPhase::Failed {
                reason: BootFailure::KernelPanic { message },
            }),
            ConsoleEvent::RootNotFound(message) => self.set(BootPhase::Failed {
                reason: BootFailure::RootNotFound { message },
            }),
            ConsoleEvent::CloudInitStage { version, stage } => {
                self.cloud_init_version = Some(version);
                self.advance(BootPhase::CloudInitRunning { stage })
            }
            ConsoleEvent::CloudInitFinished {
                version,
                datasource,
            } => {
                self.cloud_init_version = Some(version);
                self.datasource = Some(datasource);
                self.advance(BootPhase::CloudInitRunning {
                    stage: CloudInitStage::Finished,
                })
            }
            ConsoleEvent::CloudInitProblem(message) => {
                if self.problems.len() < MAX_PROBLEMS && !self.problems.contains(&message) {
                    self.problems.push(message);
                }
                None
            }
        }
    }

    /// Records that the guest agent answered (e.g. `guest-ping`). An answering agent proves the
    /// kernel runs, so an earlier phase moves to [`BootPhase::KernelRunning`].
    pub fn agent_responded(&mut self) -> Option<BootPhase> {
        self.agent_answered = true;
        self.advance(BootPhase::KernelRunning)
    }

    /// Applies cloud-init's own verdict from the guest agent; it overrides the console's.
    /// `running`/`not run` change nothing beyond proving the kernel runs.
    pub fn apply_cloud_init_status(&mut self, status: &CloudInitStatus) -> Option<BootPhase> {
        let changed = self.agent_responded();
        let verdict = match status.state() {
            CloudInitState::Done | CloudInitState::Disabled => BootPhase::Ready,
            CloudInitState::Error => BootPhase::Failed {
                reason: BootFailure::CloudInit {
                    errors: status.errors.clone(),
                },
            },
            CloudInitState::NotRun | CloudInitState::Running | CloudInitState::Unknown => {
                return changed;
            }
        };
        self.set(verdict)
    }

    /// Decides from the console alone, for a guest whose agent does not answer: once cloud-init
    /// printed its final line, ready unless it printed failures. Returns the new phase when it
    /// changed.
    pub fn conclude_from_serial(&mut self) -> Option<BootPhase> {
        if !self.wants_agent_verdict() {
            return None;
        }
        if self.problems.is_empty() {
            self.set(BootPhase::Ready)
        } else {
            let errors = self.problems.clone();
            self.set(BootPhase::Failed {
                reason: BootFailure::CloudInit { errors },
            })
        }
    }

    /// Forgets everything about the previous boot.
    fn reset(&mut self) {
        self.problems.clear();
        self.datasource = None;
        self.agent_answered = false;
    }

    /// Moves forward only (within one boot, phases never go back).
    fn advance(&mut self, next: BootPhase) -> Option<BootPhase> {
        if next.rank() > self.phase.rank() {
            self.set(next)
        } else {
            None
        }
    }

    fn set(&mut self, next: BootPhase) -> Option<BootPhase> {
        if next == self.phase {
            return None;
        }
        self.phase = next.clone();
        Some(next)
    }
}
