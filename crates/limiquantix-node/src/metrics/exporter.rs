//! The Prometheus exporter: `GET /metrics` in the text exposition format (prometheus-client),
//! on the plaintext HTTP address of `metrics_listen` only. It names every VM (id and name):
//! bind it where only the scraper reaches it.
//!
//! Each scrape builds a fresh registry from the backend's last samples (no QMP call, no wait
//! on a guest); the API's request metrics live across scrapes.

use super::api::ApiMetrics;
use super::host::HostSample;
use crate::translate::power_state;
use limiquantix_proto::v1 as pb;
use limiquantix_vm::{VmBackend, VmUsage};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

type Labels = Vec<(String, String)>;
type FloatCounter = Counter<f64, AtomicU64>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// One VM as the exporter shows it.
#[derive(Debug, Clone)]
pub struct VmRow {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its power state's name (`running`, `stopped`, ...).
    pub state: String,
    /// The collector's last sample, while it runs.
    pub usage: Option<VmUsage>,
}

/// The host's figures of one scrape.
#[derive(Debug, Clone, Default)]
pub struct NodeFigures {
    /// CPU use since the previous scrape, 0–1.
    pub cpu_ratio: f64,
    /// Memory in use (total − available), bytes.
    pub memory_used_bytes: u64,
}

/// A family registered under `name`, filled by `fill`.
fn family<M, F>(reg: &mut Registry, name: &str, help: &str, fill: F)
where
    M: prometheus_client::metrics::TypedMetric
        + prometheus_client::encoding::EncodeMetric
        + Default
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    F: FnOnce(&Family<Labels, M>),
{
    let f = Family::<Labels, M>::default();
    fill(&f);
    reg.register(name, help, f);
}

/// The VM series of one scrape.
fn register_vms(reg: &mut Registry, vms: &[VmRow]) {
    let running: Vec<(&VmRow, &VmUsage)> = vms
        .iter()
        .filter_map(|v| v.usage.as_ref().map(|u| (v, u)))
        .collect();
    let ids = |v: &VmRow| {
        vec![
            ("vm_id".into(), v.id.clone()),
            ("name".into(), v.name.clone()),
        ]
    };
    family::<FloatCounter, _>(
        reg,
        "limiquantix_vm_cpu_seconds",
        "CPU time of the VM's QEMU process (user + system, all threads)",
        |f| {
            for (v, u) in &running {
                f.get_or_create(&ids(v)).inc_by(u.cpu_time_ns as f64 / 1e9);
            }
        },
    );
    family::<Gauge, _>(
        reg,
        "limiquantix_vm_memory_used_bytes",
        "Resident memory of the VM's QEMU process (VmRSS)",
        |f| {
            for (v, u) in &running {
                f.get_or_create(&ids(v)).set(u.memory_used_bytes as i64);
            }
        },
    );
    let per_disk = |f: &Family<Labels, Counter>, read: bool| {
        for (v, u) in &running {
            for d in &u.disks {
                let mut l = ids(v);
                l.push(("disk".into(), d.disk_id.clone()));
                f.get_or_create(&l)
                    .inc_by(if read { d.read_bytes } else { d.write_bytes });
            }
        }
    };
    family(
        reg,
        "limiquantix_vm_disk_read_bytes",
        "Bytes the VM read from a disk",
        |f| per_disk(f, true),
    );
    family(
        reg,
        "limiquantix_vm_disk_write_bytes",
        "Bytes the VM wrote to a disk",
        |f| per_disk(f, false),
    );
    register_network(reg, &running);
    register_states(reg, vms);
}

/// The VMs' network series.
fn register_network(reg: &mut Registry, running: &[(&VmRow, &VmUsage)]) {
    let ids = |v: &VmRow| {
        vec![
            ("vm_id".into(), v.id.clone()),
            ("name".into(), v.name.clone()),
        ]
    };
    family::<Counter, _>(
        reg,
        "limiquantix_vm_network_receive_bytes",
        "Bytes the VM received on its tap NICs (0 with user-mode networking)",
        |f| {
            for (v, u) in running {
                f.get_or_create(&ids(v)).inc_by(u.net_rx_bytes);
            }
        },
    );
    family::<Counter, _>(
        reg,
        "limiquantix_vm_network_transmit_bytes",
        "Bytes the VM sent on its tap NICs (0 with user-mode networking)",
        |f| {
            for (v, u) in running {
                f.get_or_create(&ids(v)).inc_by(u.net_tx_bytes);
            }
        },
    );
}

/// How many VMs are in each power state.
fn register_states(reg: &mut Registry, vms: &[VmRow]) {
    family::<Gauge, _>(
        reg,
        "limiquantix_vms",
        "VMs on this node by power state",
        |f| {
            for s in ["running", "paused", "stopped", "crashed", "unknown"] {
                let n = vms.iter().filter(|v| v.state == s).count();
                f.get_or_create(&vec![("state".into(), s.into())])
                    .set(n as i64);
            }
        },
    );
}

/// The exposition text of one scrape.
pub fn render(vms: &[VmRow], node: &NodeFigures, api: Option<&ApiMetrics>) -> String {
    let mut reg = Registry::default();
    register_vms(&mut reg, vms);
    let cpu = FloatGauge::default();
    cpu.set(node.cpu_ratio);
    reg.register(
        "limiquantix_node_cpu_usage_ratio",
        "Host CPU use since the previous scrape (0-1)",
        cpu,
    );
    let mem = Gauge::<i64>::default();
    mem.set(node.memory_used_bytes as i64);
    reg.register(
        "limiquantix_node_memory_used_bytes",
        "Host memory in use (total - available)",
        mem,
    );
    if let Some(api) = api {
        reg.register(
            "limiquantix_api_requests",
            "gRPC calls by method and status code",
            api.requests.clone(),
        );
        reg.register(
            "limiquantix_api_request_duration_seconds",
            "gRPC call latency to the response headers",
            api.duration.clone(),
        );
    }
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    out
}

/// The lower-case name of a power state (`running`).
fn state_name(s: pb::PowerState) -> String {
    s.as_str_name()
        .trim_start_matches("POWER_STATE_")
        .to_ascii_lowercase()
}

/// What the HTTP handler reads.
struct Source<B> {
    backend: Arc<B>,
    api: ApiMetrics,
    last_host: Mutex<Option<HostSample>>,
}

impl<B: VmBackend> Source<B> {
    /// One scrape's text.
    async fn scrape(&self) -> String {
        let usage = self.backend.usage();
        let vms: Vec<VmRow> = self
            .backend
            .list()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|e| VmRow {
                usage: usage.get(&e.definition.id).cloned(),
                id: e.definition.id.as_str().to_string(),
                name: e.definition.name,
                state: state_name(power_state(e.status.state)),
            })
            .collect();
        let host = tokio::task::spawn_blocking(HostSample::read)
            .await
            .unwrap_or_else(|_| HostSample::read_nothing());
        let prev = self
            .last_host
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(host.clone());
        let node = NodeFigures {
            cpu_ratio: host.cpu_percent(prev.as_ref()) / 100.0,
            memory_used_bytes: host.memory.total.saturating_sub(host.memory.available),
        };
        render(&vms, &node, Some(&self.api))
    }
}

/// Binds `addr` and serves `/metrics` until `stop` resolves; returns the bound address.
pub async fn spawn<B: VmBackend>(
    addr: std::net::SocketAddr,
    backend: Arc<B>,
    api: ApiMetrics,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<std::net::SocketAddr> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let source = Arc::new(Source {
        backend,
        api,
        last_host: Mutex::new(None),
    });
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let s = source.clone();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    s.scrape().await,
                )
            }
        }),
    );
    tracing::warn!(
        listen = %bound,
        "Prometheus exporter on plaintext HTTP, unauthenticated: /metrics names every VM"
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "the metrics exporter stopped");
        }
    });
    Ok(bound)
}
