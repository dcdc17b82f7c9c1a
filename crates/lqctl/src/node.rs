//! `lqctl node info` (with the node's standing with its control plane), `lqctl events` and the
//! daemon half of `lqctl version`.

use std::collections::HashMap;
use std::io::Write as _;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use limiquantix_proto::v1::{
    AcceleratorStatus, ControlPlaneStatus, EventType, HealthCheckRequest, HealthCheckResponse,
    NodeEvent, NodeInfoResponse,
};
use serde::Serialize;

use crate::ctx::Ctx;
use crate::daemon::{CallExt as _, Daemon, Target};
use crate::lookup::{list_vms, status};
use crate::output::{Format, print_structured};
use crate::resolve::resolve;
use crate::units::{human_bytes, human_duration};

/// Node commands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Facts about the host: CPU, memory, kernel, hypervisor, daemon.
    Info,
    /// One sample of the host's CPU, memory, disks and interfaces and of every running VM.
    Metrics,
    /// Registration tokens for the control plane's Add Host (`node token create --ttl 1h`).
    #[command(subcommand)]
    Token(crate::node_http::TokenCommand),
}

/// `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this VM's events (name, id, or unique id prefix).
    #[arg(long)]
    pub vm: Option<String>,
}

/// What `node info -o json` prints.
#[derive(Debug, Serialize)]
struct NodeView {
    hostname: String,
    node_id: String,
    os: String,
    kernel: String,
    cpu_model: String,
    cpu_threads: u32,
    memory_total_bytes: u64,
    memory_available_bytes: u64,
    hypervisor: String,
    hypervisor_version: String,
    max_vcpus: u32,
    uptime_seconds: u64,
    daemon_version: String,
    daemon_uptime_seconds: u64,
    /// `null` when the node joins no control plane.
    control_plane: Option<ControlPlaneView>,
    /// The HTTP face; `null` from a daemon without it.
    http: Option<crate::node_http::HttpView>,
    /// The accelerator VMs get and why; `null` from a daemon that does not say.
    accelerator: Option<AcceleratorView>,
}

/// The accelerator the daemon chose at start (KVM only when its probe guest ran under it).
#[derive(Debug, Serialize)]
struct AcceleratorView {
    /// `kvm` or `tcg`.
    name: String,
    /// Why.
    reason: String,
    /// How long the KVM probe guest took; `null` when none ran to its end.
    probe_millis: Option<u32>,
}

impl From<AcceleratorStatus> for AcceleratorView {
    fn from(a: AcceleratorStatus) -> Self {
        Self {
            name: a.accelerator,
            reason: a.reason,
            probe_millis: Some(a.probe_millis).filter(|&ms| ms > 0),
        }
    }
}

/// The node's standing with its LimiQuantix control plane.
#[derive(Debug, Serialize)]
struct ControlPlaneView {
    url: String,
    registered: bool,
    /// The id the control plane assigned (empty before the first registration).
    node_id: String,
    management_ip: String,
    /// RFC 3339, or `null` before the first acknowledged heartbeat.
    last_heartbeat: Option<String>,
    /// `null` when the last call succeeded.
    last_error: Option<String>,
}

impl From<ControlPlaneStatus> for ControlPlaneView {
    fn from(s: ControlPlaneStatus) -> Self {
        ControlPlaneView {
            url: s.url,
            registered: s.registered,
            node_id: s.node_id,
            management_ip: s.management_ip,
            last_heartbeat: s.last_heartbeat.map(|t| t.to_string()),
            last_error: Some(s.last_error).filter(|e| !e.is_empty()),
        }
    }
}

/// Runs `node info`.
pub async fn run(ctx: &Ctx, command: NodeCommand) -> anyhow::Result<()> {
    if let NodeCommand::Metrics = command {
        return crate::metrics::node(ctx).await;
    }
    if let NodeCommand::Token(t) = command {
        return crate::node_http::token(ctx, t).await;
    }
    let mut node = ctx.daemon.node();
    let info = node.get_node_info(()).await.or_fail(&ctx.daemon)?;
    let health = node
        .health_check(HealthCheckRequest {})
        .await
        .or_fail(&ctx.daemon)?;
    let mut view = node_view(info, health);
    view.http = crate::node_http::info(ctx).await;
    if ctx.format != Format::Table {
        return print_structured(&view, ctx.format);
    }
    print_table(&view);
    Ok(())
}

fn node_view(info: NodeInfoResponse, health: HealthCheckResponse) -> NodeView {
    let cpu = info.cpu.clone().unwrap_or_default();
    let memory = info.memory.unwrap_or_default();
    NodeView {
        hostname: info.hostname,
        node_id: info.node_id,
        os: format!("{} {}", info.os_name, info.os_version)
            .trim()
            .to_owned(),
        kernel: info.kernel_version,
        cpu_model: cpu.model,
        cpu_threads: cpu.total_threads,
        memory_total_bytes: memory.total_bytes,
        memory_available_bytes: memory.available_bytes,
        hypervisor: info.hypervisor_name,
        hypervisor_version: info.hypervisor_version,
        max_vcpus: info.max_vcpus,
        uptime_seconds: info.uptime_seconds,
        daemon_version: health.version,
        daemon_uptime_seconds: health.uptime_seconds,
        control_plane: info.control_plane.map(Into::into),
        http: None,
        accelerator: info.accelerator.or(health.accelerator).map(Into::into),
    }
}

/// The `cluster` line: where the node registers and how that stands.
fn cluster_line(cp: Option<&ControlPlaneView>) -> String {
    let Some(cp) = cp else {
        return "standalone (no control plane configured)".into();
    };
    let mut line = if cp.registered {
        format!(
            "{}: registered as {} ({})",
            cp.url, cp.node_id, cp.management_ip
        )
    } else if cp.node_id.is_empty() {
        format!("{}: not registered", cp.url)
    } else {
        format!("{}: not registered (known as {})", cp.url, cp.node_id)
    };
    if let Some(t) = &cp.last_heartbeat {
        line.push_str(&format!(", last heartbeat {t}"));
    }
    if let Some(e) = &cp.last_error {
        line.push_str(&format!("; last error: {e}"));
    }
    line
}

/// The `accel` line: the accelerator and why.
fn accel_line(a: Option<&AcceleratorView>) -> String {
    match a {
        Some(a) => format!("{} ({})", a.name, a.reason),
        None => "not reported by the daemon".into(),
    }
}

fn print_table(view: &NodeView) {
    let secs = |s| human_duration(std::time::Duration::from_secs(s));
    let rows = [
        ("hostname", view.hostname.clone()),
        ("node id", view.node_id.clone()),
        ("os", view.os.clone()),
        ("kernel", view.kernel.clone()),
        (
            "cpu",
            format!("{} ({} threads)", view.cpu_model, view.cpu_threads),
        ),
        (
            "memory",
            format!(
                "{} total, {} available",
                human_bytes(view.memory_total_bytes),
                human_bytes(view.memory_available_bytes)
            ),
        ),
        (
            "hypervisor",
            format!("{} {}", view.hypervisor, view.hypervisor_version),
        ),
        ("uptime", secs(view.uptime_seconds)),
        (
            "daemon",
            format!(
                "limiquantix-node {} (up {})",
                view.daemon_version,
                secs(view.daemon_uptime_seconds)
            ),
        ),
        ("cluster", cluster_line(view.control_plane.as_ref())),
        ("http", crate::node_http::line(view.http.as_ref())),
        ("accel", accel_line(view.accelerator.as_ref())),
    ];
    for (k, v) in rows {
        println!("{:<11} {v}", format!("{k}:"));
    }
}

/// Prints lqctl's version, and the daemon's when it answers.
pub async fn version(target: &Target, format: Format) -> anyhow::Result<()> {
    let daemon = match Daemon::connect(target).await {
        Ok(d) => d
            .node()
            .health_check(HealthCheckRequest {})
            .await
            .ok()
            .map(|r| r.into_inner()),
        Err(_) => None,
    };
    let lqctl = env!("CARGO_PKG_VERSION");
    if format != Format::Table {
        return print_structured(
            &serde_json::json!({
                "lqctl": lqctl,
                "daemon": daemon.as_ref().map(|h| &h.version),
                "hypervisor": daemon.as_ref().map(|h| format!("{} {}", h.hypervisor, h.hypervisor_version)),
            }),
            format,
        );
    }
    println!("lqctl {lqctl}");
    match daemon {
        Some(h) => println!(
            "limiquantix-node {} ({} {})",
            h.version, h.hypervisor, h.hypervisor_version
        ),
        None => println!("limiquantix-node: not reachable at {}", target.address),
    }
    Ok(())
}

/// One event as `events -o json` prints it (one JSON object per line).
#[derive(Debug, Serialize)]
struct EventView<'a> {
    time: String,
    #[serde(rename = "type")]
    kind: String,
    vm_id: &'a str,
    vm_name: Option<&'a str>,
    message: &'a str,
    metadata: std::collections::BTreeMap<&'a str, &'a str>,
}

fn event_kind(e: &NodeEvent) -> String {
    EventType::try_from(e.r#type)
        .map(|t| {
            t.as_str_name()
                .trim_start_matches("EVENT_TYPE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| format!("type_{}", e.r#type))
}

/// Streams events until interrupted.
pub async fn events(ctx: &Ctx, args: EventsArgs) -> anyhow::Result<()> {
    let vms = list_vms(ctx).await?;
    let only = match &args.vm {
        Some(q) => Some(resolve(&vms, q).map_err(anyhow::Error::msg)?.vm_id.clone()),
        None => None,
    };
    let mut names: HashMap<String, String> = vms.into_iter().map(|v| (v.vm_id, v.name)).collect();
    let mut stream = ctx
        .daemon
        .node()
        .stream_events(())
        .await
        .or_fail(&ctx.daemon)?;
    loop {
        let e = match stream.message().await {
            Ok(Some(e)) => e,
            Ok(None) => return Ok(()),
            Err(s) => return Err(ctx.daemon.error(&s)),
        };
        if only.as_ref().is_some_and(|id| *id != e.vm_id) {
            continue;
        }
        if !e.vm_id.is_empty() && !names.contains_key(&e.vm_id) {
            // A VM created since we started: learn its name.
            if let Ok(vm) = status(ctx, &e.vm_id).await {
                names.insert(vm.vm_id, vm.name);
            }
        }
        let view = EventView {
            time: e
                .timestamp
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            kind: event_kind(&e),
            vm_id: &e.vm_id,
            vm_name: names.get(&e.vm_id).map(String::as_str),
            message: &e.message,
            metadata: e
                .metadata
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        };
        let line = match ctx.format {
            Format::Table => format!(
                "{}  {}  {}  {}",
                view.time,
                view.kind,
                view.vm_name.unwrap_or(view.vm_id),
                view.message
            ),
            Format::Json => serde_json::to_string(&view)?,
            Format::Yaml => format!("---\n{}", serde_saphyr::to_string(&view)?.trim_end()),
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", line.trim_end())
            .and_then(|()| out.flush())
            .context("cannot write to stdout")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(registered: bool, node_id: &str, error: &str) -> ControlPlaneView {
        ControlPlaneStatus {
            url: "http://cp:8080".into(),
            registered,
            node_id: node_id.into(),
            management_ip: "10.0.0.5".into(),
            last_heartbeat: registered.then_some(prost_types::Timestamp {
                seconds: 1_767_323_045,
                nanos: 0,
            }),
            last_error: error.into(),
            last_error_at: None,
        }
        .into()
    }

    #[test]
    fn the_cluster_line_says_where_the_node_stands() {
        assert_eq!(
            cluster_line(None),
            "standalone (no control plane configured)"
        );
        assert_eq!(
            cluster_line(Some(&view(true, "n1", ""))),
            "http://cp:8080: registered as n1 (10.0.0.5), last heartbeat 2026-01-02T03:04:05Z"
        );
        assert_eq!(
            cluster_line(Some(&view(false, "n1", "refused"))),
            "http://cp:8080: not registered (known as n1); last error: refused"
        );
        assert_eq!(
            cluster_line(Some(&view(false, "", ""))),
            "http://cp:8080: not registered"
        );
        let json = serde_json::to_value(view(false, "", "x")).unwrap();
        assert_eq!(json["last_heartbeat"], serde_json::Value::Null);
        assert_eq!(json["last_error"], "x");
    }
}
