//! Shared helpers for the backend tests: the tiny guest as a VM definition, a backend in a
//! temporary directory, the accelerator as the backend names it, waiting for serial output and
//! events.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use limiquantix_qemu::backend::BackendConfig;
use limiquantix_test_support::{accel, tiny_guest_dir};
use limiquantix_vm::accel::{Accel, AccelKind};
use limiquantix_vm::model::{DirectKernelBoot, VmDefinition, VmId};
use limiquantix_vm::{VmEvent, VmEventKind};
use tokio::sync::broadcast;

/// The boot banner the tiny guest prints on each boot.
pub const BANNER: &str = "LQ-TINY-GUEST BOOT";
/// Printed once the guest watches its power button.
pub const READY: &str = "LQ-TINY-GUEST READY";

/// QEMU tests in one binary run one at a time (2 cores; TCG guests are CPU-bound).
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A backend configuration under `root`, with the test accelerator (`LQ_TEST_ACCEL`, TCG by
/// default).
pub fn config(root: &Path) -> BackendConfig {
    let mut c = BackendConfig::new(root.join("state"), root.join("run"));
    c.accel = accel().parse().unwrap_or(Accel::Tcg);
    c.stop_timeout = Duration::from_secs(30);
    c
}

/// The accelerator QEMU is started with directly (`LQ_TEST_ACCEL`): KVM when it says `kvm`,
/// TCG otherwise.
pub fn accel_kind() -> AccelKind {
    match accel().as_str() {
        "kvm" => AccelKind::Kvm,
        _ => AccelKind::Tcg,
    }
}

/// A definition of the tiny guest: direct kernel boot, 256 MiB, no VNC.
pub fn tiny_vm(name: &str) -> VmDefinition {
    let dir = tiny_guest_dir();
    let mut def = VmDefinition::new(VmId::generate(), name, 256);
    def.console.vnc = false;
    def.direct_kernel = Some(DirectKernelBoot {
        kernel: dir.join("vmlinuz"),
        initrd: Some(dir.join("initramfs.img")),
        cmdline: "console=ttyS0 quiet panic=-1".into(),
    });
    def
}

/// How many times `needle` appears in the file (0 if it does not exist).
pub fn count_in(path: &Path, needle: &str) -> usize {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).matches(needle).count())
        .unwrap_or(0)
}

/// Waits until `needle` appears at least `n` times in the file.
pub async fn wait_count(path: &Path, needle: &str, n: usize, limit: Duration) {
    let t = Instant::now();
    while count_in(path, needle) < n {
        assert!(
            t.elapsed() < limit,
            "{needle:?} seen {} times in {} after {limit:?}, wanted {n}:\n{}",
            count_in(path, needle),
            path.display(),
            std::fs::read_to_string(path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the next event of `vm` that `want` accepts, skipping others.
pub async fn wait_event(
    rx: &mut broadcast::Receiver<VmEvent>,
    vm: &VmId,
    limit: Duration,
    want: impl Fn(&VmEventKind) -> bool,
) -> VmEventKind {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("event in time")
            .expect("event channel open");
        if &ev.vm_id == vm && want(&ev.kind) {
            return ev.kind;
        }
    }
}
