//! The accelerator decision at start: `tcg` as configured; `auto` and `kvm` only give KVM when
//! the probe guest ran under it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::rom::ProbeRom;
use super::run::{ProbeError, run_probe};
use limiquantix_vm::accel::{Accel, AccelChoice, AccelError, AccelKind};

/// How the KVM probe runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvmProbe {
    /// The probe program.
    pub rom: ProbeRom,
    /// The accelerator the probe guest runs under: KVM, except in tests, where TCG stands in
    /// for it so that a probe fails the same way on every machine (then `/dev/kvm` is not
    /// checked either).
    pub under: AccelKind,
    /// The time the probe guest gets before its QEMU is killed.
    pub timeout: Duration,
    /// The KVM device checked before the probe.
    pub kvm_device: PathBuf,
}

impl Default for KvmProbe {
    /// The real probe: the exiting program under KVM, 3 s, `/dev/kvm`.
    fn default() -> Self {
        Self {
            rom: ProbeRom::Exits,
            under: AccelKind::Kvm,
            timeout: Duration::from_secs(3),
            kvm_device: PathBuf::from(Accel::KVM_DEVICE),
        }
    }
}

impl KvmProbe {
    /// For tests: the probe runs `rom` under TCG in place of KVM.
    pub fn stand_in(rom: ProbeRom) -> Self {
        Self {
            rom,
            under: AccelKind::Tcg,
            ..Self::default()
        }
    }
}

/// `accel kvm` was configured and the probe guest did not run under KVM.
#[derive(Debug, thiserror::Error)]
#[error("accel kvm was requested but KVM does not run guests on this host: {0}")]
pub struct ProbeRefused(pub ProbeError);

/// Why no accelerator could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum ChooseError {
    /// `kvm` was configured and `/dev/kvm` does not open.
    #[error(transparent)]
    Device(#[from] AccelError),
    /// `kvm` was configured and the probe failed.
    #[error(transparent)]
    Probe(#[from] ProbeRefused),
}

/// Chooses the accelerator VMs get: `tcg` as configured; `auto` gives KVM when `/dev/kvm` opens
/// and the probe guest runs to its end under it, TCG otherwise (saying why); `kvm` fails when
/// either does not hold. `scratch` holds the probe's firmware file for the probe's lifetime.
pub async fn choose_accel(
    accel: Accel,
    probe: &KvmProbe,
    qemu: &Path,
    scratch: &Path,
) -> Result<AccelChoice, ChooseError> {
    if accel == Accel::Tcg {
        return Ok(AccelChoice::unprobed(
            AccelKind::Tcg,
            "configured (accel tcg)",
        ));
    }
    if probe.under == AccelKind::Kvm {
        let device = probe.kvm_device.clone();
        let opened = tokio::task::spawn_blocking(move || Accel::Kvm.resolve_with(&device))
            .await
            .unwrap_or_else(|e| Err(join_error(&probe.kvm_device, e)));
        if let Err(e) = opened {
            return match accel {
                Accel::Kvm => Err(e.into()),
                _ => Ok(AccelChoice::unprobed(
                    AccelKind::Tcg,
                    format!("{} cannot be opened read-write ({})", e.path, e.source),
                )),
            };
        }
    }
    match run_probe(qemu, probe.under, probe.rom, probe.timeout, scratch).await {
        Ok(run) => {
            let ms = u32::try_from(run.elapsed.as_millis()).unwrap_or(u32::MAX);
            let configured = if accel == Accel::Kvm {
                "configured (accel kvm); "
            } else {
                ""
            };
            Ok(AccelChoice {
                kind: AccelKind::Kvm,
                reason: format!("{configured}the KVM probe guest ran to its end in {ms} ms"),
                probe_millis: Some(ms),
            })
        }
        Err(e) if accel == Accel::Kvm => Err(ProbeRefused(e).into()),
        Err(e) => {
            tracing::warn!(error = %e, "the KVM probe guest failed: VMs get TCG (slow)");
            Ok(AccelChoice::unprobed(
                AccelKind::Tcg,
                format!("KVM does not run guests on this host ({e}); using TCG"),
            ))
        }
    }
}

fn join_error(device: &Path, e: tokio::task::JoinError) -> AccelError {
    AccelError {
        path: device.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}
