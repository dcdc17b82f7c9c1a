//! Running one probe guest: a QEMU with the probe firmware, nothing else, a bounded time.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt as _;
use tokio::process::Command;

use super::rom::{EXIT_PORT, EXIT_STATUS, ProbeRom, probe_rom};
use limiquantix_vm::accel::AccelKind;

/// The machine type the probe boots: the one VMs get by default.
const PROBE_MACHINE: &str = "q35";

/// Most of QEMU's stderr kept for the reason of a failure.
const STDERR_LIMIT: u64 = 4096;

/// A probe guest that reached the end of its program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRun {
    /// From spawning QEMU to its exit.
    pub elapsed: Duration,
}

/// Why a probe guest did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The probe firmware could not be written or QEMU could not be spawned.
    #[error("cannot start the probe guest ({what}): {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The guest did not exit in time; its QEMU was killed.
    #[error("the probe guest did not finish within {} ms (its QEMU was killed)", .timeout.as_millis())]
    Hung {
        /// The time it had.
        timeout: Duration,
    },
    /// QEMU ended some other way (it refused the accelerator, or the guest reset).
    #[error("the probe guest's QEMU exited with {status} instead of {EXIT_STATUS}{}", stderr_note(.stderr))]
    Exited {
        /// QEMU's exit status, or the signal.
        status: String,
        /// The last line QEMU wrote to stderr.
        stderr: String,
    },
}

fn stderr_note(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

/// The probe's QEMU arguments (the firmware path is taken verbatim: `-bios` parses no options).
pub fn probe_args(accel: AccelKind, rom: &Path) -> Vec<std::ffi::OsString> {
    let cpu = match accel {
        AccelKind::Kvm => "host",
        AccelKind::Tcg => "max",
    };
    let device = format!("isa-debug-exit,iobase={EXIT_PORT:#x},iosize=0x04");
    let mut args: Vec<std::ffi::OsString> = [
        "-nodefaults",
        "-no-user-config",
        "-no-reboot",
        "-machine",
        PROBE_MACHINE,
        "-accel",
        accel.qemu_name(),
        "-cpu",
        cpu,
        "-m",
        "16",
        "-display",
        "none",
        "-serial",
        "none",
        "-monitor",
        "none",
        "-device",
        &device,
        "-bios",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(rom.as_os_str().to_owned());
    args
}

/// Boots the probe guest `rom` under `accel` with `qemu` and waits at most `timeout` for it to
/// exit; the firmware file lives in a temporary directory under `scratch`.
pub async fn run_probe(
    qemu: &Path,
    accel: AccelKind,
    rom: ProbeRom,
    timeout: Duration,
    scratch: &Path,
) -> Result<ProbeRun, ProbeError> {
    let io = |what| move |source| ProbeError::Io { what, source };
    let dir = tempfile::Builder::new()
        .prefix(".kvm-probe-")
        .tempdir_in(scratch)
        .map_err(io("creating its directory"))?;
    let rom_path = dir.path().join("probe.rom");
    tokio::fs::write(&rom_path, probe_rom(rom))
        .await
        .map_err(io("writing its firmware"))?;
    let started = Instant::now();
    let mut child = Command::new(qemu)
        .args(probe_args(accel, &rom_path))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(io("spawning QEMU"))?;
    let stderr = child.stderr.take();
    let reader = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(s) = stderr {
            let _ = s.take(STDERR_LIMIT).read_to_string(&mut text).await;
        }
        text
    });
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.map_err(io("waiting for QEMU"))?,
        Err(_) => {
            let _ = child.kill().await;
            reader.abort();
            return Err(ProbeError::Hung { timeout });
        }
    };
    let elapsed = started.elapsed();
    if status.code() == Some(EXIT_STATUS) {
        return Ok(ProbeRun { elapsed });
    }
    let text = reader.await.unwrap_or_default();
    let last = text.lines().rev().find(|l| !l.trim().is_empty());
    Err(ProbeError::Exited {
        status: status.to_string(),
        stderr: last.unwrap_or_default().trim().to_owned(),
    })
}
