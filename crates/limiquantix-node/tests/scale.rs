//! Many VMs on one daemon, in small: 20 boot-sector VMs (1 MiB raw disk, 32 MiB, no NIC, an idle
//! vCPU after SeaBIOS) under TCG.
//!
//! - The start queue: with `--max-concurrent-starts 1`, 20 StartVMs at once with a 300 ms deadline;
//!   the ones still waiting for their turn at their deadline fail with DEADLINE_EXCEEDED and the
//!   queue's own message, and their VMs stay stopped; the others run. Then every VM starts.
//! - Re-adoption: with three QEMUs killed while the daemon is down (kill -9), the restarted
//!   daemon re-adopts the 17 others and marks the three at once.

mod common;

use common::bootsector::{boot_sector_image, request};
use common::{Node, eventually};
use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use std::time::{Duration, Instant};
use tonic::Code;

const N: usize = 20;

fn ids() -> Vec<String> {
    (0..N)
        .map(|i| format!("5ca1e000-0000-4000-8000-{i:012x}"))
        .collect()
}

async fn states(client: &mut NodeClient) -> Vec<(String, i32)> {
    let mut v: Vec<_> = client
        .list_v_ms(())
        .await
        .unwrap()
        .into_inner()
        .vms
        .into_iter()
        .map(|s| (s.vm_id, s.state))
        .collect();
    v.sort();
    v
}

/// StartVM of every id at once, each with `deadline`: the outcome of each, in id order.
async fn start_all(
    client: &NodeClient,
    ids: &[String],
    deadline: Duration,
) -> Vec<Result<(), tonic::Status>> {
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let mut c = client.clone();
            let mut req = tonic::Request::new(pb::VmIdRequest { vm_id: id.clone() });
            req.set_timeout(deadline);
            tokio::spawn(async move { c.start_vm(req).await.map(|_| ()) })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// 20 StartVMs at once through a queue of one: the late ones give up at their deadline,
/// having changed nothing.
async fn queue_honours_deadlines(client: &mut NodeClient, ids: &[String]) {
    // 300 ms: a quiet host starts about ten of these in that time, a busy one one or two.
    let outcomes = start_all(client, ids, Duration::from_millis(300)).await;
    let listed = states(client).await;
    let (mut admitted, mut queued) = (0, 0);
    for ((id, outcome), (listed_id, state)) in ids.iter().zip(&outcomes).zip(&listed) {
        assert_eq!(id, listed_id);
        match outcome {
            Ok(()) => {
                admitted += 1;
                assert_eq!(*state, pb::PowerState::Running as i32, "{id}");
            }
            Err(s) if s.message().contains("for a turn") => {
                queued += 1;
                assert_eq!(s.code(), Code::DeadlineExceeded, "{id}: {s:?}");
                assert!(
                    s.message()
                        .contains("among at most 1 concurrent QEMU starts")
                        && s.message().contains("nothing was done"),
                    "{id}: {}",
                    s.message()
                );
                assert_eq!(*state, pb::PowerState::Stopped as i32, "{id} changed");
            }
            // The transport's own timeout: the start had its turn and finishes anyway.
            Err(s) => {
                admitted += 1;
                assert!(
                    matches!(s.code(), Code::Cancelled | Code::DeadlineExceeded),
                    "{id}: {s:?}"
                );
            }
        }
    }
    assert!(
        admitted >= 1,
        "no start got through the queue: {outcomes:?}"
    );
    assert!(
        queued >= 1,
        "no start waited past its deadline: {outcomes:?}"
    );
    // Without a deadline, every stopped VM starts (one at a time).
    let rest: Vec<String> = listed
        .iter()
        .filter(|(_, s)| *s == pb::PowerState::Stopped as i32)
        .map(|(id, _)| id.clone())
        .collect();
    let outcomes = start_all(client, &rest, Duration::from_secs(120)).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let running = eventually(Duration::from_secs(30), async || {
        states(client)
            .await
            .iter()
            .all(|(_, s)| *s == pb::PowerState::Running as i32)
    })
    .await;
    assert!(running, "{:?}", states(client).await);
}

/// SIGKILLs the QEMU of VM `id` (its pidfile).
fn kill_qemu(node: &Node, id: &str) {
    let pidfile = node.run.join("vms").join(id).join("qemu.pid");
    let pid: libc::pid_t = std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) on a QEMU this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_vms_queue_their_starts_and_come_back_after_a_daemon_kill() {
    let _qemu = common::QEMU.lock().await;
    let mut node = Node::new();
    node.args = vec!["--max-concurrent-starts".into(), "1".into()];
    let image = boot_sector_image(&node.images);
    node.start();
    let mut client = node.client().await;
    let ids = ids();
    for (i, id) in ids.iter().enumerate() {
        client
            .create_vm(request(id, &format!("s{i}"), &image))
            .await
            .unwrap();
    }
    queue_honours_deadlines(&mut client, &ids).await;

    // kill -9 the daemon; three QEMUs die while it is away.
    node.kill();
    for id in &ids[..3] {
        kill_qemu(&node, id);
    }
    let t = Instant::now();
    node.start();
    let mut client = node.client().await;
    let listed = states(&mut client).await;
    let took = t.elapsed();
    for (id, state) in &listed {
        let want = if ids[..3].contains(id) {
            pb::PowerState::Crashed
        } else {
            pb::PowerState::Running
        };
        assert_eq!(*state, want as i32, "{id}");
    }
    assert!(took < Duration::from_secs(5), "re-adoption took {took:?}");
    let log = node.log_text();
    assert_eq!(
        log.matches("re-adopted running QEMU").count(),
        N - 3,
        "{log}"
    );
    println!("{} VMs re-adopted, 3 marked crashed, in {took:?}", N - 3);
}
