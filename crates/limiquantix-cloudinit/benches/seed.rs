//! Seed generation, side by side in one run: in-process, `cloud-localds` and `genisoimage` on
//! the same user-data and meta-data. Prints the time per seed and the ratios.
//!
//! Run with `cargo bench -p limiquantix-cloudinit --bench seed`. A missing tool is reported and
//! skipped. Set `LQ_BENCH_ITERS` to change the number of external-tool runs (default 20).

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use limiquantix_cloudinit::DefaultUserData;
use limiquantix_cloudinit::iso9660::IsoOptions;
use limiquantix_cloudinit::seed::{Seed, write_atomic};

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent: stay quick there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("seed bench: run with `cargo bench` to measure");
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let defaults = DefaultUserData::new("web1")
        .ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG8xexampleexampleexampleexample user@host");
    let user_data = defaults.to_yaml().expect("user-data");
    let seed = Seed::from_default_user_data("0d6b5c3e-8f1a-4c2b-9e7d-1a2b3c4d5e6f", &defaults)
        .expect("seed");
    let files = seed.files().expect("files");
    let meta_data = files.get("meta-data").expect("meta-data").to_vec();
    assert_eq!(files.get("user-data"), Some(user_data.as_slice()));
    std::fs::write(dir.path().join("user-data"), &user_data).expect("write user-data");
    std::fs::write(dir.path().join("meta-data"), &meta_data).expect("write meta-data");
    let iters: u32 = std::env::var("LQ_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let options = IsoOptions::at(1_700_000_000);

    let in_memory = time(20_000, || {
        black_box(seed.to_iso(&options).expect("iso"));
    });
    let out = dir.path().join("ours.iso");
    // Written like the tools write: a new plain file, no fsync. (Each run gets a new name:
    // replacing a file by truncation makes ext4 flush it, which would time the disk.)
    let mut n = 0u32;
    let to_file = time(2_000, || {
        n += 1;
        let path = dir.path().join(format!("ours-{n}.iso"));
        std::fs::write(path, seed.to_iso(&options).expect("iso")).expect("write");
    });
    // What the daemon does: temporary file, fsync, rename, fsync of the directory.
    let durable = time(200, || {
        write_atomic(&out, &seed.to_iso(&options).expect("iso")).expect("write");
    });
    println!(
        "seed generation, per seed (user-data {} B, meta-data {} B):",
        user_data.len(),
        meta_data.len()
    );
    println!(
        "  in-process, ISO bytes in memory       {:>10}",
        show(in_memory)
    );
    println!(
        "  in-process, written to a file         {:>10}",
        show(to_file)
    );
    println!(
        "  in-process, atomic + fsync (daemon)   {:>10}",
        show(durable)
    );

    let tools: [(&str, &[&str]); 2] = [
        ("cloud-localds", &["cl.iso", "user-data", "meta-data"]),
        (
            "genisoimage",
            &[
                "-quiet",
                "-output",
                "gi.iso",
                "-volid",
                "cidata",
                "-joliet",
                "-rock",
                "user-data",
                "meta-data",
            ],
        ),
    ];
    for (tool, args) in tools {
        match run_tool(dir.path(), tool, args, iters) {
            Some(per_seed) => println!(
                "  {tool:<37} {:>10}   ratio: {:.0}x (file), {:.0}x (memory), {:.1}x (fsync)",
                show(per_seed),
                per_seed.as_secs_f64() / to_file.as_secs_f64(),
                per_seed.as_secs_f64() / in_memory.as_secs_f64(),
                per_seed.as_secs_f64() / durable.as_secs_f64(),
            ),
            None => println!("  {tool:<37} skipped: not installed or failing"),
        }
    }
}

/// Mean duration of `f` over `n` runs (after one warm-up run).
fn time(n: u32, mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed() / n
}

fn run_tool(dir: &Path, tool: &str, args: &[&str], iters: u32) -> Option<Duration> {
    let run = || {
        // Same rule as for ours: a new output file each run.
        for output in ["cl.iso", "gi.iso"] {
            let _ = std::fs::remove_file(dir.join(output));
        }
        Command::new(tool)
            .args(args)
            .current_dir(dir)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !run() {
        return None;
    }
    let start = Instant::now();
    for _ in 0..iters {
        assert!(run(), "{tool} failed");
    }
    Some(start.elapsed() / iters)
}

fn show(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}
