//! The exposition text, read back with a Prometheus text parser.

use super::api::ApiMetrics;
use super::exporter::{NodeFigures, VmRow, render};
use limiquantix_vm::{DiskUsage, VmUsage};
use prometheus_parse::{Sample, Scrape, Value};

fn parse(text: &str) -> Scrape {
    // The OpenMetrics terminator is not part of the classic format the parser reads.
    let lines = text
        .lines()
        .filter(|l| *l != "# EOF")
        .map(|l| Ok(l.to_string()));
    Scrape::parse(lines).unwrap()
}

fn find<'a>(s: &'a Scrape, name: &str, label: (&str, &str)) -> &'a Sample {
    s.samples
        .iter()
        .find(|x| x.metric == name && x.labels.get(label.0) == Some(label.1))
        .unwrap_or_else(|| panic!("no {name} with {label:?} in {:#?}", s.samples))
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Counter(n) | Value::Gauge(n) | Value::Untyped(n) => *n,
        other => panic!("not a number: {other:?}"),
    }
}

#[test]
fn the_exposition_parses_and_names_vms_disks_and_units() {
    let usage = VmUsage {
        cpu_time_ns: 2_500_000_000,
        memory_used_bytes: 64 << 20,
        disks: vec![DiskUsage {
            disk_id: "disk0".into(),
            read_bytes: 4096,
            write_bytes: 512,
            ..Default::default()
        }],
        net_rx_bytes: 7,
        net_tx_bytes: 9,
        ..Default::default()
    };
    let vms = [
        VmRow {
            id: "vm-a".into(),
            name: "web-1".into(),
            state: "running".into(),
            usage: Some(usage),
        },
        VmRow {
            id: "vm-b".into(),
            name: "db".into(),
            state: "stopped".into(),
            usage: None,
        },
    ];
    let api = ApiMetrics::default();
    api.record(
        "/limiquantix.node.v1.NodeDaemonService/GetVMStatus",
        None,
        0.0004,
    );
    api.record(
        "/limiquantix.node.v1.NodeDaemonService/StartVM",
        Some("9"),
        0.01,
    );
    let node = NodeFigures {
        cpu_ratio: 0.25,
        memory_used_bytes: 1 << 30,
    };
    let text = render(&vms, &node, Some(&api));
    let s = parse(&text);
    let cpu = find(&s, "limiquantix_vm_cpu_seconds_total", ("vm_id", "vm-a"));
    assert_eq!(number(&cpu.value), 2.5);
    assert_eq!(cpu.labels.get("name"), Some("web-1"));
    let rd = find(
        &s,
        "limiquantix_vm_disk_read_bytes_total",
        ("disk", "disk0"),
    );
    assert_eq!(number(&rd.value), 4096.0);
    let wr = find(
        &s,
        "limiquantix_vm_disk_write_bytes_total",
        ("vm_id", "vm-a"),
    );
    assert_eq!(number(&wr.value), 512.0);
    let mem = find(&s, "limiquantix_vm_memory_used_bytes", ("vm_id", "vm-a"));
    assert_eq!(number(&mem.value), (64 << 20) as f64);
    let rx = find(
        &s,
        "limiquantix_vm_network_receive_bytes_total",
        ("vm_id", "vm-a"),
    );
    assert_eq!(number(&rx.value), 7.0);
    assert_eq!(
        number(&find(&s, "limiquantix_vms", ("state", "running")).value),
        1.0
    );
    assert_eq!(
        number(&find(&s, "limiquantix_vms", ("state", "stopped")).value),
        1.0
    );
    let ratio = s
        .samples
        .iter()
        .find(|x| x.metric == "limiquantix_node_cpu_usage_ratio");
    assert_eq!(number(&ratio.unwrap().value), 0.25);
    let failed = find(
        &s,
        "limiquantix_api_requests_total",
        ("code", "FailedPrecondition"),
    );
    assert_eq!(failed.labels.get("method"), Some("StartVM"));
    assert!(
        text.contains("limiquantix_api_request_duration_seconds_bucket"),
        "{text}"
    );
    // A stopped VM has no usage series.
    assert!(
        !s.samples
            .iter()
            .any(|x| x.metric.starts_with("limiquantix_vm_")
                && x.labels.get("vm_id") == Some("vm-b"))
    );
}
