//! CreateVolume through the daemon against `qemu-img` by hand, in one run.
//!
//! 1. A 20 GiB thin volume: CreateVolume (EMPTY) over the Unix socket (id and pool checks,
//!    capacity check, `qemu-img create`, the new volume read back) against
//!    `qemu-img create -f qcow2 <file> 20G`.
//! 2. A 1 GiB clone: CloneVolume of a qcow2 volume holding 1 GiB of written data (a full,
//!    independent copy with progress) against `qemu-img convert -O qcow2 <src> <dst>`.
//!
//! Prints p50/p99 of each and the ratio daemon/by hand. Run:
//! `cargo bench -p limiquantix-node --bench volume` (`LQ_BENCH_N` sets the thin count,
//! default 50; the clone runs a fifth as many, at least 4). Not run by `cargo test`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::Node;
use limiquantix_proto::v1 as pb;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const GIB: u64 = 1 << 30;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(what: &str, daemon: &mut [Duration], hand: &mut [Duration]) {
    daemon.sort();
    hand.sort();
    let (d50, d99) = (percentile(daemon, 0.5), percentile(daemon, 0.99));
    let (h50, h99) = (percentile(hand, 0.5), percentile(hand, 0.99));
    println!(
        "{what}: daemon p50 {:.2} ms p99 {:.2} ms | qemu-img by hand p50 {:.2} ms p99 {:.2} ms | \
         ratio daemon/hand p50 {:.3} p99 {:.3}",
        ms(d50),
        ms(d99),
        ms(h50),
        ms(h99),
        ms(d50) / ms(h50),
        ms(d99) / ms(h99)
    );
}

fn qemu_img(args: &[&str], files: &[&Path]) {
    let ok = Command::new("qemu-img")
        .args(args)
        .args(files)
        .status()
        .unwrap()
        .success();
    assert!(ok, "qemu-img {args:?} failed");
}

/// A qcow2 volume `<pool>/src.qcow2` holding 1 GiB of non-zero data.
fn source_volume(pool: &Path) {
    let raw = pool.join("src.raw");
    let mut f = std::fs::File::create(&raw).unwrap();
    let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8 | 1).collect();
    for _ in 0..1024 {
        f.write_all(&block).unwrap();
    }
    f.sync_all().unwrap();
    qemu_img(
        &["convert", "-q", "-f", "raw", "-O", "qcow2"],
        &[&raw, &pool.join("src.qcow2")],
    );
    std::fs::remove_file(raw).unwrap();
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("LQ_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let mut node = Node::new();
    node.start_with(&[("RUST_LOG", "warn")]);
    let mut c = node.client().await;
    let hand = node.root.join("by-hand");
    std::fs::create_dir_all(&hand).unwrap();
    let create = |id: String| pb::CreateVolumeRequest {
        pool_id: "pool".into(),
        volume_id: id,
        size_bytes: 20 * GIB,
        source_type: pb::VolumeSourceType::VolumeSourceEmpty as i32,
        source_id: String::new(),
    };
    c.create_volume(create("warm".into())).await.unwrap();
    qemu_img(
        &["create", "-q", "-f", "qcow2"],
        &[&hand.join("warm.qcow2"), Path::new("20G")],
    );

    let (mut daemon, mut by_hand) = (Vec::new(), Vec::new());
    for i in 0..n {
        let t = Instant::now();
        c.create_volume(create(format!("thin{i}"))).await.unwrap();
        daemon.push(t.elapsed());
        let t = Instant::now();
        qemu_img(
            &["create", "-q", "-f", "qcow2"],
            &[&hand.join(format!("thin{i}.qcow2")), Path::new("20G")],
        );
        by_hand.push(t.elapsed());
    }
    report(
        &format!("CreateVolume 20 GiB thin x{n}"),
        &mut daemon,
        &mut by_hand,
    );

    source_volume(&node.pool);
    let src = node.pool.join("src.qcow2");
    let runs = (n / 5).max(4);
    let (mut daemon, mut by_hand, mut durable) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        // Each copy starts with no dirty pages of another; the order alternates, because the
        // first copy of a round pays for the deletions of the round before.
        let dst = hand.join(format!("clone{i}.qcow2"));
        for daemon_turn in [i % 2 == 0, i % 2 == 1] {
            assert!(Command::new("sync").status().unwrap().success());
            let t = Instant::now();
            if daemon_turn {
                c.clone_volume(pb::CloneVolumeRequest {
                    pool_id: "pool".into(),
                    source_volume_id: "src".into(),
                    dest_volume_id: format!("clone{i}"),
                })
                .await
                .unwrap();
                daemon.push(t.elapsed());
            } else {
                qemu_img(
                    &["convert", "-q", "-f", "qcow2", "-O", "qcow2"],
                    &[&src, &dst],
                );
                by_hand.push(t.elapsed());
                // The daemon's copy is on disk when it answers; by hand that takes a sync.
                assert!(Command::new("sync").arg(&dst).status().unwrap().success());
                durable.push(t.elapsed());
            }
        }
        // Both copies hold the source's data; then they go, to keep the disk from filling.
        let copy = node.pool.join(format!("clone{i}.qcow2"));
        qemu_img(&["compare", "-q"], &[&src, &copy]);
        qemu_img(&["compare", "-q"], &[&src, &dst]);
        let _ = std::fs::remove_file(copy);
        let _ = std::fs::remove_file(dst);
    }
    let mut daemon2 = daemon.clone();
    report(
        &format!("CloneVolume 1 GiB written x{runs}"),
        &mut daemon,
        &mut by_hand,
    );
    report(
        &format!("CloneVolume 1 GiB written x{runs}, by hand with `sync FILE`"),
        &mut daemon2,
        &mut durable,
    );
}
