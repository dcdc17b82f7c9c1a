//! Boot phases: where a guest is on its way to "ready", and why a boot failed.

use serde::{Deserialize, Serialize};

/// Where a guest is on its way to "ready".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum BootPhase {
    /// QEMU is running; the guest has printed nothing recognisable yet.
    QemuStarted,
    /// The firmware or the boot loader is running (SeaBIOS, OVMF, syslinux, GRUB).
    Firmware,
    /// The guest kernel has started.
    KernelRunning,
    /// cloud-init is running the given stage.
    CloudInitRunning {
        /// The stage last reported on the console.
        stage: CloudInitStage,
    },
    /// cloud-init finished without errors: the guest is configured.
    Ready,
    /// The boot cannot reach ready without intervention.
    Failed {
        /// Why.
        reason: BootFailure,
    },
}

impl BootPhase {
    /// Whether the phase is final for this boot (`Ready` or `Failed`).
    pub fn is_terminal(&self) -> bool {
        matches!(self, BootPhase::Ready | BootPhase::Failed { .. })
    }

    /// Ordering of phases within one boot, used to refuse going backwards.
    pub(super) fn rank(&self) -> u8 {
        match self {
            BootPhase::QemuStarted => 0,
            BootPhase::Firmware => 1,
            BootPhase::KernelRunning => 2,
            BootPhase::CloudInitRunning { stage } => 3 + *stage as u8,
            BootPhase::Ready | BootPhase::Failed { .. } => 10,
        }
    }
}

impl std::fmt::Display for BootPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootPhase::QemuStarted => f.write_str("qemu started"),
            BootPhase::Firmware => f.write_str("firmware"),
            BootPhase::KernelRunning => f.write_str("kernel running"),
            BootPhase::CloudInitRunning { stage } => write!(f, "cloud-init {stage}"),
            BootPhase::Ready => f.write_str("ready"),
            BootPhase::Failed { reason } => write!(f, "failed: {reason}"),
        }
    }
}

/// cloud-init's stages, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloudInitStage {
    /// `init-local`: before networking, finds a local datasource (the NoCloud seed).
    InitLocal,
    /// `init`: networking up, users, SSH keys, disk growth.
    Init,
    /// `modules:config`.
    ModulesConfig,
    /// `modules:final`: packages, `runcmd`, scripts.
    ModulesFinal,
    /// The console says cloud-init finished; its verdict is not known yet.
    Finished,
}

impl CloudInitStage {
    /// The stage for the name cloud-init prints in `running '<name>'`.
    pub fn from_console_name(name: &str) -> Option<Self> {
        match name {
            "init-local" => Some(Self::InitLocal),
            "init" => Some(Self::Init),
            "modules:config" => Some(Self::ModulesConfig),
            "modules:final" => Some(Self::ModulesFinal),
            _ => None,
        }
    }
}

impl std::fmt::Display for CloudInitStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InitLocal => "init-local",
            Self::Init => "init",
            Self::ModulesConfig => "modules:config",
            Self::ModulesFinal => "modules:final",
            Self::Finished => "finished",
        })
    }
}

/// Why a boot failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BootFailure {
    /// The firmware found nothing to boot.
    NothingBootable {
        /// The firmware's message.
        message: String,
    },
    /// The guest kernel panicked.
    KernelPanic {
        /// The panic line.
        message: String,
    },
    /// The initramfs could not find the root filesystem.
    RootNotFound {
        /// The initramfs' message.
        message: String,
    },
    /// cloud-init reported errors.
    CloudInit {
        /// cloud-init's error messages (from `cloud-init status`, or from the console when the
        /// guest has no agent).
        errors: Vec<String>,
    },
}

impl std::fmt::Display for BootFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootFailure::NothingBootable { message } => {
                write!(f, "nothing bootable ({message})")
            }
            BootFailure::KernelPanic { message } => write!(f, "guest kernel panic ({message})"),
            BootFailure::RootNotFound { message } => {
                write!(f, "guest root filesystem not found ({message})")
            }
            BootFailure::CloudInit { errors } if errors.is_empty() => {
                f.write_str("cloud-init reported an error")
            }
            BootFailure::CloudInit { errors } => {
                write!(f, "cloud-init reported errors: {}", errors.join("; "))
            }
        }
    }
}
