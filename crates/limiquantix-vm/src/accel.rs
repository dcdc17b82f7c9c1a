//! Accelerator selection: `auto`, `kvm` or `tcg`.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The configured accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accel {
    /// KVM when `/dev/kvm` can be opened read-write and a probe guest runs under it (the QEMU
    /// backend's KVM probe), TCG otherwise.
    #[default]
    Auto,
    /// KVM; fails at start when `/dev/kvm` is not usable or the probe guest does not run.
    Kvm,
    /// TCG (software emulation): slow, but works everywhere.
    Tcg,
}

/// The accelerator a QEMU process actually uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccelKind {
    /// Hardware virtualisation.
    Kvm,
    /// Software emulation.
    Tcg,
}

impl AccelKind {
    /// QEMU's name (`-accel kvm|tcg`).
    pub fn qemu_name(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        }
    }
}

/// Why an accelerator cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("accel kvm was requested but {path} cannot be opened read-write: {source}")]
pub struct AccelError {
    /// The KVM device path.
    pub path: String,
    /// The open error.
    #[source]
    pub source: std::io::Error,
}

impl std::str::FromStr for Accel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "kvm" => Ok(Self::Kvm),
            "tcg" => Ok(Self::Tcg),
            _ => Err(format!(
                "{s:?} is not an accelerator (allowed: auto, kvm, tcg)"
            )),
        }
    }
}

impl Accel {
    /// The default KVM device.
    pub const KVM_DEVICE: &'static str = "/dev/kvm";

    /// Resolves against [`Accel::KVM_DEVICE`] (opens it briefly; call off the async runtime).
    pub fn resolve(self) -> Result<AccelKind, AccelError> {
        self.resolve_with(Path::new(Self::KVM_DEVICE))
    }

    /// Resolves against a given KVM device path: `auto` gives KVM when the device opens
    /// read-write, else TCG; `kvm` fails when it does not open.
    pub fn resolve_with(self, kvm_device: &Path) -> Result<AccelKind, AccelError> {
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(kvm_device)
                .map(drop)
        };
        match self {
            Self::Tcg => Ok(AccelKind::Tcg),
            Self::Auto => Ok(if open().is_ok() {
                AccelKind::Kvm
            } else {
                AccelKind::Tcg
            }),
            Self::Kvm => open()
                .map(|()| AccelKind::Kvm)
                .map_err(|source| AccelError {
                    path: kvm_device.display().to_string(),
                    source,
                }),
        }
    }
}

/// The accelerator the node gives its VMs, and why it was chosen (shown in the log, HealthCheck,
/// GetNodeInfo and `lqctl node info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccelChoice {
    /// The accelerator in use.
    pub kind: AccelKind,
    /// Why, in a sentence: configured, `/dev/kvm` unusable, or what the KVM probe guest did.
    pub reason: String,
    /// How long the KVM probe guest took, when one ran.
    pub probe_millis: Option<u32>,
}

impl AccelChoice {
    /// A choice made without a probe.
    pub fn unprobed(kind: AccelKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
            probe_millis: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("kvm");
        assert_eq!(Accel::Auto.resolve_with(&missing).unwrap(), AccelKind::Tcg);
        assert_eq!(Accel::Tcg.resolve_with(&missing).unwrap(), AccelKind::Tcg);
        let e = Accel::Kvm.resolve_with(&missing).unwrap_err();
        assert!(e.to_string().contains("cannot be opened read-write"), "{e}");
        std::fs::write(&missing, b"").unwrap();
        assert_eq!(Accel::Auto.resolve_with(&missing).unwrap(), AccelKind::Kvm);
        assert_eq!("tcg".parse::<Accel>().unwrap(), Accel::Tcg);
        assert!("xen".parse::<Accel>().is_err());
    }
}
