//! The KVM probe: before the node gives its VMs KVM, it boots a minimal guest under it and
//! watches it exit.
//!
//! Some hosts open `/dev/kvm` but cannot run ordinary guests under it (nested or paravirtual KVM
//! modules): every guest then hangs. The probe guest is a 64 KiB firmware image generated in
//! code ([`rom`]) that goes from the reset vector through protected mode and paging into long
//! mode, as every x86-64 kernel does, and writes to QEMU's `isa-debug-exit` port; [`run`] starts
//! it on the machine type VMs get, with a bounded time (the QEMU is killed when it hangs), and
//! [`choose`] turns the configured accelerator and the probe's outcome into an
//! [`limiquantix_vm::accel::AccelChoice`].

pub mod choose;
pub mod rom;
pub mod run;

pub use choose::{ChooseError, KvmProbe, ProbeRefused, choose_accel};
pub use rom::{ProbeRom, probe_rom};
pub use run::{ProbeError, ProbeRun, run_probe};
