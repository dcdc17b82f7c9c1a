//! CreateVM through the daemon against doing the same by hand, in one run.
//!
//! Through the daemon: a CreateVM round trip over the Unix socket (validation, path
//! confinement, qcow2 overlay on a 1 GiB qcow2 image via qemu-img, the default seed built and
//! written as an ISO, `vm.json` written atomically). By hand: `qemu-img create -F qcow2 -b ...`
//! plus writing user-data/meta-data and `cloud-localds seed.iso user-data meta-data`.
//!
//! Prints p50/p99 of sequential round trips and the wall time of 100 concurrent creations for
//! both, with the ratios. Run: `cargo bench -p limiquantix-node --bench createvm`
//! (`LQ_BENCH_N` sets the sequential count, default 100). Not run by `cargo test`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Node, cloud_vm};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const CONCURRENT: usize = 100;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn vm_id(prefix: u32, i: usize) -> String {
    format!("{prefix:08x}-0000-4000-8000-{i:012x}")
}

/// One VM by hand, as an operator would script it.
fn by_hand(dir: &Path, base: &Path, name: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let ok = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(base)
        .arg(dir.join("disk-0.qcow2"))
        .arg("1G")
        .status()
        .unwrap()
        .success();
    assert!(ok, "qemu-img create failed");
    std::fs::write(
        dir.join("user-data"),
        format!(
            "#cloud-config\nhostname: {name}\nusers:\n  - name: admin\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    \
             shell: /bin/bash\n    ssh_authorized_keys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBench bench]\n\
             packages: [qemu-guest-agent]\nruncmd: [[systemctl, enable, --now, qemu-guest-agent]]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("meta-data"),
        format!("instance-id: {name}\nlocal-hostname: {name}\n"),
    )
    .unwrap();
    let ok = Command::new("cloud-localds")
        .arg(dir.join("cloud-init.iso"))
        .arg(dir.join("user-data"))
        .arg(dir.join("meta-data"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "cloud-localds failed");
}

fn request(node: &Node, id: String, i: usize) -> limiquantix_proto::v1::CreateVmOnNodeRequest {
    let mut r = cloud_vm(&id, &format!("bench{i}"), &node.images.join("base.qcow2"));
    r.spec.as_mut().unwrap().disks[0].size_gib = 1;
    r.spec.as_mut().unwrap().default_seed = Some(limiquantix_proto::v1::DefaultSeedOptions {
        ssh_authorized_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBench bench".into()],
        ..Default::default()
    });
    r
}

fn report(what: &str, daemon: &mut [Duration], hand: &mut [Duration]) {
    daemon.sort();
    hand.sort();
    let (d50, d99) = (percentile(daemon, 0.5), percentile(daemon, 0.99));
    let (h50, h99) = (percentile(hand, 0.5), percentile(hand, 0.99));
    println!(
        "{what}: daemon p50 {:.2} ms p99 {:.2} ms | by hand p50 {:.2} ms p99 {:.2} ms | \
         ratio daemon/hand p50 {:.3} p99 {:.3}",
        ms(d50),
        ms(d99),
        ms(h50),
        ms(h99),
        ms(d50) / ms(h50),
        ms(d99) / ms(h99)
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("LQ_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut node = Node::new();
    let base = node.images.join("base.qcow2");
    assert!(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&base)
            .arg("1G")
            .status()
            .unwrap()
            .success()
    );
    node.start_with(&[("RUST_LOG", "warn,limiquantix_node::service=debug")]);
    let mut client = node.client().await;
    let hand_root = node.root.join("by-hand");

    // Warm-up (first-call costs: schema load, connection).
    for i in 0..3 {
        client
            .create_vm(request(&node, vm_id(0xfeed, i), i))
            .await
            .unwrap();
        by_hand(
            &hand_root.join(format!("warm{i}")),
            &base,
            &format!("warm{i}"),
        );
    }

    // Sequential round trips, interleaved so both see the same machine load.
    let mut daemon = Vec::with_capacity(n);
    let mut hand = Vec::with_capacity(n);
    for i in 0..n {
        let req = request(&node, vm_id(0xa, i), i);
        let t = Instant::now();
        let r = client.create_vm(req).await.unwrap().into_inner();
        daemon.push(t.elapsed());
        assert!(r.created);
        let t = Instant::now();
        by_hand(
            &hand_root.join(format!("seq{i}")),
            &base,
            &format!("seq{i}"),
        );
        hand.push(t.elapsed());
    }
    report(&format!("CreateVM x{n} sequential"), &mut daemon, &mut hand);

    // The floor both sides share: one `qemu-img create` of the overlay alone.
    let mut floor = Vec::with_capacity(n);
    for i in 0..n {
        let file = hand_root.join(format!("floor{i}.qcow2"));
        let t = Instant::now();
        let ok = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&base)
            .arg(&file)
            .arg("1G")
            .status()
            .unwrap()
            .success();
        floor.push(t.elapsed());
        assert!(ok);
    }
    floor.sort();
    println!(
        "qemu-img create alone x{n}: p50 {:.2} ms p99 {:.2} ms",
        ms(percentile(&floor, 0.5)),
        ms(percentile(&floor, 0.99))
    );

    // 100 at once.
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CONCURRENT {
        let mut c = client.clone();
        let req = request(&node, vm_id(0xb, i), i);
        tasks.spawn(async move { c.create_vm(req).await.map(|r| r.into_inner().created) });
    }
    while let Some(r) = tasks.join_next().await {
        assert!(r.unwrap().unwrap());
    }
    let daemon_wall = t.elapsed();
    let t = Instant::now();
    let mut hands = Vec::new();
    for i in 0..CONCURRENT {
        let (root, base) = (hand_root.clone(), base.clone());
        hands.push(std::thread::spawn(move || {
            by_hand(&root.join(format!("par{i}")), &base, &format!("par{i}"))
        }));
    }
    for h in hands {
        h.join().unwrap();
    }
    let hand_wall = t.elapsed();
    println!(
        "CreateVM x{CONCURRENT} concurrent: daemon {:.0} ms | by hand {:.0} ms | ratio daemon/hand {:.3}",
        ms(daemon_wall),
        ms(hand_wall),
        ms(daemon_wall) / ms(hand_wall)
    );
    println!(
        "goals: p50 <= 15 ms ({}), 100 concurrent <= 2 s ({})",
        if ms(percentile(&daemon, 0.5)) <= 15.0 {
            "met"
        } else {
            "missed"
        },
        if daemon_wall <= Duration::from_secs(2) {
            "met"
        } else {
            "missed"
        }
    );
    node.terminate();
    breakdown(&node.log_text(), n + 3);
}

/// Where the daemon's time went, from its debug log: validation + seed vs. the backend's define.
fn breakdown(log: &str, sequential: usize) {
    let field = |line: &str, key: &str| -> Option<f64> {
        let rest = line.split(&format!("{key}=")).nth(1)?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<f64>().ok().map(|us| us / 1000.0)
    };
    let (mut prepare, mut define) = (Vec::new(), Vec::new());
    for line in log
        .lines()
        .filter(|l| l.contains("CreateVM timings"))
        .take(sequential)
    {
        if let (Some(p), Some(d)) = (field(line, "prepare_us"), field(line, "define_us")) {
            prepare.push(p);
            define.push(d);
        }
    }
    if prepare.is_empty() {
        return;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "inside the daemon, sequential calls (median of {}): validation + seed {:.2} ms, backend define \
         (overlay via qemu-img, files, fsyncs) {:.2} ms",
        prepare.len(),
        median(&mut prepare),
        median(&mut define)
    );
}
