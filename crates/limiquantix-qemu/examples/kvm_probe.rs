//! Measures the KVM probe: `cargo run --release -p limiquantix-qemu --example kvm_probe --
//! [kvm|tcg] [RUNS]` boots the probe guest RUNS times (default 20) under the accelerator and
//! prints the median, minimum and maximum time from spawn to exit, or the failure.

use std::path::Path;
use std::time::Duration;

use limiquantix_qemu::probe::{ProbeRom, run_probe};
use limiquantix_vm::accel::AccelKind;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let accel = match args.next().as_deref() {
        Some("kvm") => AccelKind::Kvm,
        _ => AccelKind::Tcg,
    };
    let runs: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(20);
    let scratch = tempfile::tempdir()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let qemu = Path::new("qemu-system-x86_64");
        let timeout = Duration::from_secs(3);
        let started = std::time::Instant::now();
        match run_probe(qemu, accel, ProbeRom::Exits, timeout, scratch.path()).await {
            Ok(run) => times.push(run.elapsed),
            Err(e) => {
                let ms = started.elapsed().as_millis();
                println!(
                    "probe under {}: failed after {ms} ms: {e}",
                    accel.qemu_name()
                );
                return Ok(());
            }
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "probe under {}: {} runs, median {:.1} ms, min {:.1} ms, max {:.1} ms",
        accel.qemu_name(),
        times.len(),
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
    Ok(())
}
