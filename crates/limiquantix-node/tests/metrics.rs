//! Metrics through the daemon binary with the tiny guest under TCG: the collector's figures in
//! GetVMStatus and ListVMs, StreamMetrics at 1 s (ending with the daemon), and the Prometheus
//! exporter's `/metrics` read with a Prometheus text parser.

mod common;

use common::{Node, QEMU, cloud_vm, eventually};
use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use std::time::Duration;
use tokio_stream::StreamExt as _;

const ID: &str = "5b1f0c2e-8d3a-4e6f-9a7b-0c1d2e3f4a5b";
const READY: &str = "LQ-TINY-GUEST READY";

async fn usage(client: &mut NodeClient) -> pb::ResourceUsage {
    let s = client
        .get_vm_status(pb::VmIdRequest { vm_id: ID.into() })
        .await
        .unwrap()
        .into_inner();
    s.resource_usage.expect("resource_usage")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `/metrics`, parsed.
async fn scrape(port: u16) -> prometheus_parse::Scrape {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines = text
        .lines()
        .filter(|l| *l != "# EOF")
        .map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).unwrap()
}

fn value(s: &prometheus_parse::Scrape, metric: &str, label: (&str, &str)) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == metric && x.labels.get(label.0) == Some(label.1))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

/// GetVMStatus: CPU time grows, an idle guest stays well under a core, RSS and the boot
/// disk's reads are there; ListVMs shows the same sample.
async fn check_status(client: &mut NodeClient) {
    let sampled = eventually(Duration::from_secs(15), async || {
        let u = usage(client).await;
        u.cpu_time_ns > 0 && u.memory_used_bytes > 0 && u.disk_read_bytes > 0
    })
    .await;
    let first = usage(client).await;
    assert!(sampled, "no usage sample: {first:?}");
    assert_eq!(first.memory_total_bytes, 128 << 20);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = usage(client).await;
    assert!(later.cpu_time_ns > first.cpu_time_ns, "{first:?} {later:?}");
    assert!(
        later.cpu_usage_percent < 90.0,
        "an idle tiny guest: {later:?}"
    );
    assert_eq!((later.network_rx_bytes, later.network_tx_bytes), (0, 0));
    let listed = client.list_v_ms(()).await.unwrap().into_inner();
    let mine = listed.vms.iter().find(|v| v.vm_id == ID).unwrap();
    let u = mine.resource_usage.as_ref().unwrap();
    assert!(u.cpu_time_ns >= later.cpu_time_ns && u.memory_used_bytes > 0);
}

#[tokio::test]
async fn a_running_tiny_vm_shows_up_in_status_stream_metrics_and_prometheus() {
    let _one_guest = QEMU.lock().await;
    let mut node = Node::new();
    let port = free_port();
    node.args = vec![
        "--metrics-listen".into(),
        format!("127.0.0.1:{port}"),
        "--metrics-interval".into(),
        "1".into(),
    ];
    let image = node.tiny_image();
    node.start();
    let mut client = node.client().await;
    let mut req = cloud_vm(ID, "tiny-metrics", &image);
    req.spec.as_mut().unwrap().memory_mib = 128;
    client.create_vm(req).await.unwrap();
    client
        .start_vm(pb::VmIdRequest { vm_id: ID.into() })
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(90), async || common::serial_log(
            &mut client,
            ID
        )
        .await
        .contains(READY))
        .await,
        "the tiny guest did not boot; serial:\n{}",
        common::serial_log(&mut client, ID).await
    );
    check_status(&mut client).await;

    // StreamMetrics at 1 s: two messages a second or so apart, the VM and the host in each.
    let mut stream = client
        .stream_metrics(pb::StreamMetricsRequest {
            interval_seconds: 1,
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while got.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a message within 10 s")
            .expect("the stream goes on")
            .unwrap();
        got.push(m);
    }
    for m in &got {
        let vm = m.vms.iter().find(|v| v.vm_id == ID).expect("the VM");
        assert_eq!(vm.name, "tiny-metrics");
        assert!(vm.memory_used_bytes > 0 && vm.disk_read_bytes > 0, "{vm:?}");
        assert!(m.memory_total_bytes > 0 && m.memory_used_bytes > 0);
    }
    let (t0, t1) = (got[0].timestamp.unwrap(), got[1].timestamp.unwrap());
    let apart = (t1.seconds - t0.seconds) as f64 + f64::from(t1.nanos - t0.nanos) / 1e9;
    assert!((0.5..3.0).contains(&apart), "{apart} s apart");

    // Prometheus: the VM's series by id, its disk by name, the API's own calls.
    let s = scrape(port).await;
    let cpu = value(&s, "limiquantix_vm_cpu_seconds_total", ("vm_id", ID));
    assert!(cpu.is_some_and(|c| c > 0.0), "{cpu:?}");
    let rss = value(&s, "limiquantix_vm_memory_used_bytes", ("vm_id", ID));
    assert!(rss.is_some_and(|r| r > 0.0), "{rss:?}");
    let read = value(
        &s,
        "limiquantix_vm_disk_read_bytes_total",
        ("disk", "disk0"),
    );
    assert!(read.is_some_and(|r| r > 0.0), "{read:?}");
    assert_eq!(
        value(&s, "limiquantix_vms", ("state", "running")),
        Some(1.0)
    );
    let calls = value(
        &s,
        "limiquantix_api_requests_total",
        ("method", "GetVMStatus"),
    );
    assert!(calls.is_some_and(|n| n >= 2.0), "{calls:?}");
    for node_series in [
        "limiquantix_node_cpu_usage_ratio",
        "limiquantix_node_memory_used_bytes",
    ] {
        assert!(
            s.samples.iter().any(|x| x.metric == node_series),
            "{node_series}"
        );
    }

    // The daemon's shutdown ends the open stream.
    node.terminate();
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "StreamMetrics outlived the daemon");
}
