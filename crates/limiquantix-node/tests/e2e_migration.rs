//! Live migration between two daemons on one host (two state and run directories, one pool
//! `shared` with the same directory on both), real Debian guests under TCG, two boots (side by
//! side). VM 1's disk is in the shared pool:
//!
//! 1. refused at prepare: a third daemon without the shared pool cannot reach the VM's disk;
//!    it keeps nothing, and the guest runs on in the same QEMU process; a target restarted
//!    between PrepareMigration and the transfer gives the prepared VM up (nothing left, its
//!    QEMU gone, the token unknown);
//! 2. the target's QEMU killed mid-transfer (a 1 MiB/s bandwidth limit keeps the transfer
//!    going): the stream ends FAILED, the guest runs on the source in the same QEMU process,
//!    its counter goes on, the target keeps nothing;
//! 3. the source daemon killed mid-transfer: restarted, it cancels the migration nobody drives
//!    any more; the guest runs on in the same QEMU process, the target gives its half up when
//!    its waiting QEMU ends;
//! 4. the migration that succeeds, as between nodes (`https://127.0.0.1:PORT` to the target's
//!    TLS listener, each daemon with its own node certificate from one CA: the guest travels
//!    over TCP with TLS): progress, then COMPLETE with the downtime; the source forgets
//!    the VM (NOT_FOUND, no directory, no QEMU), VM_MIGRATED_OUT there and VM_MIGRATED_IN on the
//!    target; inside the guest the same boot id and the same counting process, further on; the
//!    seed on the target is the source's byte for byte.
//!
//! VM 2's overlay is local to the source (its VM directory, on the source's copy of the image):
//!
//! 5. without storage copy it is refused at prepare, naming the disk;
//! 6. with storage copy, as between nodes (NBD export with TLS on the target, `blockdev-mirror`
//!    from the source, the memory over TLS after it) a file
//!    written before is read back on the target, whose overlay is its own file on its own copy
//!    of the image; the source's directory and disk are gone after success.
//!
//! Checks inside the guest go through ExecuteInGuest on whichever daemon has the VM.

mod common;

use common::guest::*;
use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use std::time::{Duration, Instant};
use tonic::Code;

/// Starts the counter: a process writing an increasing number (and its pid) to /run.
const COUNTER: &str = "setsid sh -c 'echo $$ > /run/counter.pid; i=0; while :; do \
    i=$((i+1)); echo $i > /run/counter; sleep 0.2; done' </dev/null >/dev/null 2>&1 &";

/// Runs `sh -c script` in the guest through ExecuteInGuest; returns stdout (exit code 0).
async fn sh(client: &mut NodeClient, id: &str, script: &str) -> String {
    let r = client
        .execute_in_guest(pb::ExecuteInGuestRequest {
            vm_id: id.into(),
            command: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            wait_for_exit: true,
            timeout_seconds: 60,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("ExecuteInGuest {script:?}: {e:?}"))
        .into_inner();
    assert_eq!(r.exit_code, 0, "{script:?}: {}", r.stderr);
    r.stdout.trim().to_owned()
}

/// The guest's boot id, counter value and counter pid.
async fn guest_facts(client: &mut NodeClient, id: &str) -> (String, u64, String) {
    let out = sh(
        client,
        id,
        "cat /proc/sys/kernel/random/boot_id /run/counter /run/counter.pid",
    )
    .await;
    let v: Vec<&str> = out.lines().collect();
    assert_eq!(v.len(), 3, "{out}");
    (v[0].into(), v[1].parse().unwrap(), v[2].into())
}

fn qemu_pid(daemon: &Daemon, id: &str) -> u32 {
    let text = std::fs::read_to_string(daemon.paths(id).pidfile()).expect("pidfile");
    text.trim().parse().unwrap()
}

/// The process runs (a zombie, ended but not reaped by a parent other than the daemon, is not).
fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    state.is_some_and(|s| s != 'Z')
}

/// The daemon has no VM at all: none listed, no VM directory.
async fn keeps_nothing(daemon: &Daemon, client: &mut NodeClient) {
    let vms = client.list_v_ms(()).await;
    assert!(vms.expect("ListVMs").into_inner().vms.is_empty());
    let dirs: Vec<_> = std::fs::read_dir(daemon.state().join("vms"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(dirs.is_empty(), "left behind: {dirs:?}");
}

/// MigrateVM; returns every progress message. `on_progress` may act on each.
async fn migrate(
    client: &mut NodeClient,
    req: pb::MigrateVmRequest,
    mut on_progress: impl FnMut(&pb::MigrationProgress),
) -> Vec<pb::MigrationProgress> {
    let mut stream = client
        .migrate_vm(req)
        .await
        .expect("MigrateVM")
        .into_inner();
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while let Some(p) = tokio::time::timeout_at(deadline.into(), stream.message())
        .await
        .expect("the migration did not end in time")
        .expect("MigrateVM stream")
    {
        on_progress(&p);
        all.push(p);
    }
    all
}

fn request(id: &str, target: &Daemon) -> pb::MigrateVmRequest {
    pb::MigrateVmRequest {
        vm_id: id.into(),
        target_node_uri: format!("unix:{}", target.daemon_paths().socket.display()),
        live: true,
        ..Default::default()
    }
}

/// MigrateVM to the target's TLS listener, as between nodes.
fn remote_request(id: &str, port: u16) -> pb::MigrateVmRequest {
    pb::MigrateVmRequest {
        vm_id: id.into(),
        target_node_uri: format!("https://127.0.0.1:{port}"),
        live: true,
        ..Default::default()
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openssl {args:?}: {err}");
}

/// A CA and two node certificates it signed (`a`, `b`: for 127.0.0.1, server and client use).
fn node_pki(dir: &std::path::Path) {
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let ca = [
        "req", "-x509", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
    ];
    openssl(
        dir,
        &[&ca[..], &key, &["-subj", "/CN=lq test cluster CA"]].concat(),
    );
    let ext = "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n";
    std::fs::write(dir.join("node.ext"), ext).unwrap();
    for n in ["a", "b"] {
        let (k, csr, crt) = (format!("{n}.key"), format!("{n}.csr"), format!("{n}.crt"));
        let subj = format!("/CN=node-{n}");
        openssl(
            dir,
            &[
                &["req", "-keyout", &k, "-out", &csr, "-subj", &subj][..],
                &key,
            ]
            .concat(),
        );
        let sign = [
            "x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key",
        ];
        let out = [
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            "node.ext",
        ];
        openssl(dir, &[&sign[..], &out].concat());
    }
}

/// The daemon arguments of node `n`: the shared pool and a TLS listener on `port`.
fn node_args(pool: &str, pki: &std::path::Path, n: &str, port: u16) -> Vec<String> {
    let file = |f: String| pki.join(f).display().to_string();
    vec![
        "--pool".into(),
        pool.into(),
        "--listen".into(),
        format!("tcp:127.0.0.1:{port}"),
        "--tls-cert".into(),
        file(format!("{n}.crt")),
        "--tls-key".into(),
        file(format!("{n}.key")),
        "--tls-client-ca".into(),
        file("ca.crt".into()),
    ]
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn last_phase(all: &[pb::MigrationProgress]) -> pb::MigrationPhase {
    all.last().expect("no progress").phase()
}

/// Waits for an event of `kind` about VM `id`.
async fn event(events: &mut Events, id: &str, kind: pb::EventType) -> pb::NodeEvent {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let e = tokio::time::timeout_at(deadline.into(), events.message())
            .await
            .unwrap_or_else(|_| panic!("no {kind:?} event"))
            .unwrap()
            .unwrap();
        if e.vm_id == id && e.r#type == kind as i32 {
            return e;
        }
    }
}

async fn refused_at_prepare(id: &str, source: &mut NodeClient, pid: u32) {
    let (stranger, mut sc) = Daemon::start().await;
    let all = migrate(source, request(id, &stranger), |_| {}).await;
    assert_eq!(last_phase(&all), pb::MigrationPhase::Failed);
    let why = &all.last().unwrap().error;
    assert!(why.contains("refused") && why.contains("backing"), "{why}");
    keeps_nothing(&stranger, &mut sc).await;
    assert!(alive(pid));
}

async fn target_restarted_after_prepare(id: &str, a: &Daemon, b: &mut Daemon) -> NodeClient {
    let mut cb = limiquantix_proto::connect(&request(id, b).target_node_uri)
        .await
        .unwrap();
    let token = cb
        .prepare_migration(pb::PrepareMigrationRequest {
            vm_id: id.into(),
            definition_json: std::fs::read_to_string(a.paths(id).vm_json()).unwrap(),
            seed_iso: std::fs::read(a.paths(id).seed_iso()).unwrap(),
            ..Default::default()
        })
        .await
        .expect("PrepareMigration")
        .into_inner();
    let waiting = qemu_pid(b, id);
    let mut cb = b.restart().await;
    keeps_nothing(b, &mut cb).await;
    assert!(!alive(waiting), "the prepared QEMU is still there");
    let late = cb.receive_migration(token).await.unwrap_err();
    assert_eq!(late.code(), Code::PermissionDenied);
    cb
}

async fn source_killed_mid_transfer(id: &str, a: &mut Daemon, b: &Daemon) -> NodeClient {
    let pid = qemu_pid(a, id);
    let mut ca = limiquantix_proto::connect(&request(id, a).target_node_uri)
        .await
        .unwrap();
    let (_, before, counter_pid) = guest_facts(&mut ca, id).await;
    let mut req = request(id, b);
    req.max_bandwidth_bytes_per_sec = 1 << 20;
    let mut stream = ca.migrate_vm(req).await.expect("MigrateVM").into_inner();
    loop {
        let p = stream.message().await.unwrap().expect("progress");
        if p.phase() == pb::MigrationPhase::Transferring && p.data_transferred_bytes > 0 {
            break;
        }
    }
    a.kill();
    drop(stream);
    let mut ca = a.spawn().await;
    source_kept_the_guest(id, (a, &mut ca), b, pid, (before, &counter_pid)).await;
    ca
}

/// After a failed migration: the target keeps nothing, and the guest runs on the source in
/// the same QEMU process `pid`, its counter past `before` in the same process.
async fn source_kept_the_guest(
    id: &str,
    (a, ca): (&Daemon, &mut NodeClient),
    b: &Daemon,
    pid: u32,
    (before, counter_pid): (u64, &str),
) {
    let mut cb = limiquantix_proto::connect(&request(id, b).target_node_uri)
        .await
        .unwrap();
    keeps_nothing_soon(b, &mut cb).await;
    assert_eq!(qemu_pid(a, id), pid, "the source's QEMU changed");
    let status = ca.get_vm_status(pb::VmIdRequest { vm_id: id.into() }).await;
    assert_eq!(
        status.unwrap().into_inner().state,
        pb::PowerState::Running as i32
    );
    let (_, after, same_pid) = guest_facts(ca, id).await;
    assert!(after > before, "the counter stopped: {before} then {after}");
    assert_eq!(same_pid, counter_pid);
}

/// [`keeps_nothing`] within 15 s (the target notices its waiting QEMU ended within a second).
async fn keeps_nothing_soon(daemon: &Daemon, client: &mut NodeClient) {
    for _ in 0..30 {
        let listed = client.list_v_ms(()).await.unwrap().into_inner().vms;
        if listed.is_empty()
            && !daemon
                .state()
                .join("vms")
                .read_dir()
                .is_ok_and(|mut d| d.next().is_some())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    keeps_nothing(daemon, client).await;
}

async fn target_killed_mid_transfer(id: &str, a: &Daemon, ca: &mut NodeClient, b: &Daemon) {
    let pid = qemu_pid(a, id);
    let (_, before, counter_pid) = guest_facts(ca, id).await;
    let mut req = request(id, b);
    req.max_bandwidth_bytes_per_sec = 1 << 20;
    let mut killed = false;
    let all = migrate(ca, req, |p| {
        if !killed && p.phase() == pb::MigrationPhase::Transferring && p.data_transferred_bytes > 0
        {
            let target = qemu_pid(b, id);
            // SAFETY: kill(2) on the target's QEMU, a process this test's daemon started.
            unsafe { libc::kill(target as i32, libc::SIGKILL) };
            killed = true;
        }
    })
    .await;
    assert!(killed, "never saw the transfer: {all:?}");
    assert_eq!(last_phase(&all), pb::MigrationPhase::Failed, "{all:?}");
    assert!(!all.last().unwrap().error.is_empty());
    tokio::time::sleep(Duration::from_secs(1)).await;
    source_kept_the_guest(id, (a, ca), b, pid, (before, &counter_pid)).await;
}

async fn storage_migration(
    id: &str,
    a: &Daemon,
    ca: &mut NodeClient,
    b: &Daemon,
    cb: &mut NodeClient,
    b_port: u16,
) {
    sh(ca, id, "echo moved-with-its-disk > /root/marker && sync").await;
    let pid = qemu_pid(a, id);
    // Without storage copy: refused at prepare; the target keeps nothing.
    let all = migrate(ca, request(id, b), |_| {}).await;
    assert_eq!(last_phase(&all), pb::MigrationPhase::Failed);
    let why = &all.last().unwrap().error;
    assert!(why.contains("refused") && why.contains("disks[0]"), "{why}");
    assert_eq!(cb.list_v_ms(()).await.unwrap().into_inner().vms.len(), 0);
    assert!(alive(pid));
    // With storage copy, as between nodes.
    let mut req = remote_request(id, b_port);
    req.storage = true;
    let started = Instant::now();
    let all = migrate(ca, req, |_| {}).await;
    let done = all.last().unwrap();
    assert_eq!(done.phase(), pb::MigrationPhase::Complete, "{all:?}");
    eprintln!(
        "storage migration took {:?}, downtime {} ms",
        started.elapsed(),
        done.downtime_ms
    );
    assert!(!alive(pid));
    assert!(
        !a.paths(id).vm_dir.exists(),
        "the source kept the VM's directory"
    );
    assert_eq!(sh(cb, id, "cat /root/marker").await, "moved-with-its-disk");
    let disk = b.paths(id).vm_dir.join("disk-0.qcow2");
    assert!(disk.is_file(), "no disk of the target's own");
    let info = std::process::Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(&disk)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    let own_image = b.state().join("images").join(IMAGE_NAME);
    assert!(
        info.contains(&own_image.display().to_string()),
        "the target's overlay is not on its own image: {info}"
    );
    let bye = cb.force_stop_vm(pb::VmIdRequest { vm_id: id.into() }).await;
    bye.expect("ForceStopVM on the target");
    let gone = cb.delete_vm(pb::VmIdRequest { vm_id: id.into() }).await;
    gone.expect("DeleteVM on the target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_migration_between_two_daemons() {
    let _one = BOOTING.lock().await;
    let shared = tempfile::Builder::new()
        .prefix("lq-shared-")
        .tempdir()
        .unwrap();
    let image = shared.path().join(IMAGE_NAME);
    if std::fs::hard_link(limiquantix_test_support::guest_image(), &image).is_err() {
        std::fs::copy(limiquantix_test_support::guest_image(), &image).unwrap();
    }
    let pool = format!("shared={}", shared.path().display());
    let pki = tempfile::tempdir().unwrap();
    node_pki(pki.path());
    let (a_port, b_port) = (free_port(), free_port());
    let a_args = node_args(&pool, pki.path(), "a", a_port);
    let b_args = node_args(&pool, pki.path(), "b", b_port);
    let a_args: Vec<&str> = a_args.iter().map(String::as_str).collect();
    let b_args: Vec<&str> = b_args.iter().map(String::as_str).collect();
    let (mut a, mut ca) = Daemon::start_with(&a_args).await;
    let (mut b, cb) = Daemon::start_with(&b_args).await;
    let mut events_a = subscribe(&mut ca).await;

    let mut events_a2 = subscribe(&mut ca).await;
    let mut req = vm_request(&a, "mover", None);
    let spec = req.spec.as_mut().unwrap();
    spec.memory_mib = 512;
    spec.disks[0].backing_file = image.display().to_string();
    spec.disks[0].pool_id = "shared".into();
    let id = create_and_start(&mut ca, req).await;
    let mut req = vm_request(&a, "local", None);
    req.spec.as_mut().unwrap().memory_mib = 512;
    let id2 = create_and_start(&mut ca, req).await;
    let deadline = Instant::now() + BOOT_LIMIT;
    let verdict = daemon_verdict(&a, &mut events_a, &id, deadline).await;
    assert_eq!(verdict, "guest boot: ready");
    let verdict = daemon_verdict(&a, &mut events_a2, &id2, deadline).await;
    assert_eq!(verdict, "guest boot: ready");
    drop(events_a2);
    sh(&mut ca, &id, COUNTER).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = qemu_pid(&a, &id);

    refused_at_prepare(&id, &mut ca, pid).await;
    drop(cb);
    let mut cb = target_restarted_after_prepare(&id, &a, &mut b).await;
    let mut events_b = subscribe(&mut cb).await;
    storage_migration(&id2, &a, &mut ca, &b, &mut cb, b_port).await;
    target_killed_mid_transfer(&id, &a, &mut ca, &b).await;
    drop(ca);
    let mut ca = source_killed_mid_transfer(&id, &mut a, &b).await;
    let mut events_a = subscribe(&mut ca).await;

    // The migration that succeeds, as between nodes.
    let (boot_id, before, counter_pid) = guest_facts(&mut ca, &id).await;
    let seed = std::fs::read(a.paths(&id).seed_iso()).unwrap();
    let started = Instant::now();
    let all = migrate(&mut ca, remote_request(&id, b_port), |_| {}).await;
    let took = started.elapsed();
    let done = all.last().unwrap();
    assert_eq!(done.phase(), pb::MigrationPhase::Complete, "{all:?}");
    assert_eq!(done.percent_complete, 100);
    assert!(
        all.iter()
            .any(|p| p.phase() == pb::MigrationPhase::Transferring),
        "{all:?}"
    );
    assert!(done.downtime_ms > 0 && done.downtime_ms < 5000, "{done:?}");
    eprintln!("migration took {took:?}, downtime {} ms", done.downtime_ms);

    // The source forgot the VM.
    let gone = ca
        .get_vm_status(pb::VmIdRequest { vm_id: id.clone() })
        .await;
    assert_eq!(gone.unwrap_err().code(), Code::NotFound);
    keeps_nothing(&a, &mut ca).await;
    assert!(!alive(pid), "the source's QEMU is still there");
    event(&mut events_a, &id, pb::EventType::VmMigratedOut).await;
    event(&mut events_b, &id, pb::EventType::VmMigratedIn).await;

    // The target runs the same guest, further on.
    let status = cb
        .get_vm_status(pb::VmIdRequest { vm_id: id.clone() })
        .await;
    assert_eq!(
        status.unwrap().into_inner().state,
        pb::PowerState::Running as i32
    );
    assert_eq!(std::fs::read(b.paths(&id).seed_iso()).unwrap(), seed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (boot_after, after, pid_after) = guest_facts(&mut cb, &id).await;
    assert_eq!(boot_after, boot_id, "the guest rebooted");
    assert_eq!(pid_after, counter_pid, "the counter restarted");
    assert!(after > before, "the counter stopped: {before} then {after}");
}
