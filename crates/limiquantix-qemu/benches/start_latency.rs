//! Define + start-to-running through the backend, against starting the same QEMU by hand to a
//! ready QMP socket, side by side in one run. Prints both and their ratio (goal: at most 1.1x).
//!
//! `cargo bench -p limiquantix-qemu --bench start_latency` (env: `LQ_BENCH_ITERS`, default
//! 7; `LQ_TINY_GUEST_DIR` or the tiny guest is built; `LQ_TEST_ACCEL`, default tcg).
//!
//! - backend: `define` (directory, `vm.json`, fsyncs) + `start` (firmware, argv, spawn, runtime
//!   record, QMP handshake), until `start` returns with the guest running.
//! - by hand: spawn `qemu-system-x86_64` with the same arguments the backend builds, connect to
//!   its QMP socket and finish the capabilities handshake; once plainly, once through `setsid(1)`
//!   (a new session, as the backend and anyone detaching a QEMU by hand do: on a loaded host
//!   with scheduler autogroups a new session starts in its own scheduling group, which shows).
//!
//! Each iteration runs all three, rotating which goes first; QEMU is stopped between runs.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use limiquantix_qemu::backend::{DefineExtras, QemuBackend};
use limiquantix_qemu::qmp::QmpClient;

#[path = "../tests/common/mod.rs"]
mod common;

/// Spawns QEMU with `args` (through `setsid(1)` when `new_session`, as someone detaching it by
/// hand would) and returns once QMP answers, then quits it.
async fn by_hand(
    qemu: &Path,
    args: &[OsString],
    qmp: &Path,
    log: &Path,
    new_session: bool,
) -> Duration {
    let _ = std::fs::remove_file(qmp);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let t = Instant::now();
    let mut cmd = if new_session {
        let mut c = tokio::process::Command::new("setsid");
        c.arg(qemu);
        c
    } else {
        tokio::process::Command::new(qemu)
    };
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let client =
        QmpClient::connect_with_retry(qmp, Duration::from_secs(10), Duration::from_secs(30))
            .await
            .unwrap();
    let elapsed = t.elapsed();
    let _ = client.execute("quit", None).await;
    child.wait().await.unwrap();
    elapsed
}

fn stats(v: &[Duration]) -> (f64, f64) {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    (median, mean)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let iters: usize = std::env::var("LQ_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let tmp = tempfile::tempdir().unwrap();
    let config = common::config(tmp.path());
    let qemu = config.qemu_binary.clone();
    let backend = QemuBackend::open(config).await.unwrap();

    // The by-hand runs use the exact arguments the backend builds for an identical VM.
    let hand = common::tiny_vm("by-hand");
    backend
        .define(hand.clone().into_valid().unwrap(), DefineExtras::default())
        .await
        .unwrap();
    let hand_args = backend.command_line(&hand.id).await.unwrap();
    let hand_paths = backend.paths(&hand.id).unwrap();
    std::fs::create_dir_all(&hand_paths.run_dir).unwrap();
    let (hand_qmp, hand_log) = (hand_paths.qmp_socket(), hand_paths.qemu_log());

    // The command line alone (firmware, argv; one trip to the blocking pool), as start builds it.
    let mut argv_only = Vec::new();
    for _ in 0..iters {
        let t = Instant::now();
        backend.command_line(&hand.id).await.unwrap();
        argv_only.push(t.elapsed());
    }
    let (mut through_backend, mut manual, mut manual_setsid) = (Vec::new(), Vec::new(), Vec::new());
    let mut define_only = Vec::new();
    for i in 0..iters {
        let backend_run = async {
            let def = common::tiny_vm(&format!("bench-{i}"));
            let id = def.id.clone();
            let t = Instant::now();
            backend
                .define(def.into_valid().unwrap(), DefineExtras::default())
                .await
                .unwrap();
            let defined = t.elapsed();
            backend.start(&id).await.unwrap();
            let elapsed = t.elapsed();
            define_only.push(defined);
            backend.force_stop(&id).await.unwrap();
            backend.delete(&id).await.unwrap();
            elapsed
        };
        let hand = |new_session| by_hand(&qemu, &hand_args, &hand_qmp, &hand_log, new_session);
        // Rotate which of the three goes first.
        match i % 3 {
            0 => {
                through_backend.push(backend_run.await);
                manual.push(hand(false).await);
                manual_setsid.push(hand(true).await);
            }
            1 => {
                manual.push(hand(false).await);
                manual_setsid.push(hand(true).await);
                through_backend.push(backend_run.await);
            }
            _ => {
                manual_setsid.push(hand(true).await);
                through_backend.push(backend_run.await);
                manual.push(hand(false).await);
            }
        }
    }
    let (b_med, b_mean) = stats(&through_backend);
    let (h_med, h_mean) = stats(&manual);
    let (s_med, s_mean) = stats(&manual_setsid);
    let (d_med, d_mean) = stats(&define_only);
    let start_only: Vec<Duration> = through_backend
        .iter()
        .zip(&define_only)
        .map(|(all, d)| all.saturating_sub(*d))
        .collect();
    let (o_med, o_mean) = stats(&start_only);
    println!(
        "start_latency: {iters} iterations, accel {}",
        backend.accel().qemu_name()
    );
    println!("  backend define+start to running: median {b_med:7.1} ms, mean {b_mean:7.1} ms");
    println!("    of which define:               median {d_med:7.1} ms, mean {d_mean:7.1} ms");
    println!("  backend start alone (StartVM):   median {o_med:7.1} ms, mean {o_mean:7.1} ms");
    let (a_med, a_mean) = stats(&argv_only);
    println!("    of which the command line:     median {a_med:7.1} ms, mean {a_mean:7.1} ms");
    println!("  by hand spawn to QMP ready:      median {h_med:7.1} ms, mean {h_mean:7.1} ms");
    println!("  by hand with setsid(1):          median {s_med:7.1} ms, mean {s_mean:7.1} ms");
    println!(
        "  ratio vs by hand:        {:.3}x median, {:.3}x mean (goal <= 1.1x)",
        b_med / h_med,
        b_mean / h_mean
    );
    println!(
        "  ratio vs by hand+setsid: {:.3}x median, {:.3}x mean",
        b_med / s_med,
        b_mean / s_mean
    );
    println!(
        "  start alone vs by hand:  {:.3}x median ({:.3}x vs by hand+setsid)",
        o_med / h_med,
        o_med / s_med
    );
}
