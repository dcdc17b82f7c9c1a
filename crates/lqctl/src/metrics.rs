//! `lqctl vm top` (a live table of every running VM's CPU, memory, disk and network, from
//! StreamMetrics each second) and `lqctl node metrics` (one StreamMetrics sample of the host and
//! its VMs).

use std::io::Write as _;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use limiquantix_proto::v1::{NodeMetrics, StreamMetricsRequest, VmMetrics};
use serde::Serialize;
use tokio_stream::StreamExt as _;

use crate::ctx::Ctx;
use crate::daemon::CallExt as _;
use crate::output::{Format, Table, print_structured};
use crate::units::human_bytes;

/// `vm top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The column rows are sorted by (largest first; name: alphabetical).
    #[arg(long, value_enum, default_value_t = SortBy::Cpu)]
    pub sort: SortBy,
    /// Print one table and exit (for scripts and tests).
    #[arg(long)]
    pub once: bool,
}

/// What `vm top` sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortBy {
    /// CPU use.
    Cpu,
    /// Memory in use.
    Memory,
    /// The VM's name.
    Name,
}

/// One VM in `vm top -o json` and `node metrics -o json`.
#[derive(Debug, Serialize)]
struct VmView {
    vm_id: String,
    name: String,
    cpu_percent: f64,
    memory_used_bytes: u64,
    disk_read_bytes: u64,
    disk_write_bytes: u64,
    network_rx_bytes: u64,
    network_tx_bytes: u64,
}

impl From<&VmMetrics> for VmView {
    fn from(v: &VmMetrics) -> Self {
        VmView {
            vm_id: v.vm_id.clone(),
            name: v.name.clone(),
            cpu_percent: v.cpu_usage_percent,
            memory_used_bytes: v.memory_used_bytes,
            disk_read_bytes: v.disk_read_bytes,
            disk_write_bytes: v.disk_write_bytes,
            network_rx_bytes: v.network_rx_bytes,
            network_tx_bytes: v.network_tx_bytes,
        }
    }
}

/// What `node metrics -o json` prints.
#[derive(Debug, Serialize)]
struct NodeView {
    cpu_percent: f64,
    memory_used_bytes: u64,
    memory_total_bytes: u64,
    disks: Vec<DiskView>,
    networks: Vec<NetView>,
    vms: Vec<VmView>,
}

#[derive(Debug, Serialize)]
struct DiskView {
    device: String,
    read_bytes: u64,
    write_bytes: u64,
    read_iops: u64,
    write_iops: u64,
    utilization_percent: f64,
}

#[derive(Debug, Serialize)]
struct NetView {
    interface: String,
    rx_bytes: u64,
    tx_bytes: u64,
}

/// The VMs of a sample, sorted.
fn sorted(m: &NodeMetrics, by: SortBy) -> Vec<&VmMetrics> {
    let mut vms: Vec<&VmMetrics> = m.vms.iter().collect();
    match by {
        SortBy::Cpu => vms.sort_by(|a, b| b.cpu_usage_percent.total_cmp(&a.cpu_usage_percent)),
        SortBy::Memory => vms.sort_by_key(|v| std::cmp::Reverse(v.memory_used_bytes)),
        SortBy::Name => vms.sort_by(|a, b| a.name.cmp(&b.name)),
    }
    vms
}

/// The VM table of a sample.
fn vm_table(vms: &[&VmMetrics]) -> String {
    let mut t = Table::new(&[
        "NAME",
        "ID",
        "CPU%",
        "MEMORY",
        "DISK READ",
        "DISK WRITE",
        "NET RX",
        "NET TX",
    ]);
    for v in vms {
        t.row(vec![
            v.name.clone(),
            v.vm_id.chars().take(8).collect(),
            format!("{:.1}", v.cpu_usage_percent),
            human_bytes(v.memory_used_bytes),
            human_bytes(v.disk_read_bytes),
            human_bytes(v.disk_write_bytes),
            human_bytes(v.network_rx_bytes),
            human_bytes(v.network_tx_bytes),
        ]);
    }
    t.render()
}

/// Opens StreamMetrics at `interval_seconds`.
async fn stream(ctx: &Ctx, interval_seconds: u32) -> anyhow::Result<tonic::Streaming<NodeMetrics>> {
    let mut node = ctx.daemon.node();
    let s = node
        .stream_metrics(StreamMetricsRequest { interval_seconds })
        .await
        .or_fail(&ctx.daemon)?;
    Ok(s)
}

/// The next sample of a stream.
async fn next(s: &mut tonic::Streaming<NodeMetrics>) -> anyhow::Result<NodeMetrics> {
    s.next()
        .await
        .context("the daemon ended the metrics stream")?
        .map_err(|e| anyhow::anyhow!("{}", e.message()))
}

/// `vm top`: redraws the table on each sample until Ctrl-C (or once with --once or -o).
pub async fn top(ctx: &Ctx, args: TopArgs) -> anyhow::Result<()> {
    let mut s = stream(ctx, 1).await?;
    loop {
        let m = next(&mut s).await?;
        let vms = sorted(&m, args.sort);
        if ctx.format != Format::Table {
            let view: Vec<VmView> = vms.into_iter().map(VmView::from).collect();
            return print_structured(&view, ctx.format);
        }
        let table = vm_table(&vms);
        let mut out = std::io::stdout().lock();
        if args.once {
            write!(out, "{table}")?;
            return Ok(());
        }
        // Home and clear, then the table.
        write!(out, "\x1b[H\x1b[2J{} VMs running\n\n{table}", vms.len())?;
        out.flush()?;
    }
}

/// `node metrics`: the second sample of a 1 s stream (the first has no host CPU figure yet).
pub async fn node(ctx: &Ctx) -> anyhow::Result<()> {
    let mut s = stream(ctx, 1).await?;
    next(&mut s).await?;
    let m = next(&mut s).await?;
    let view = NodeView {
        cpu_percent: m.cpu_usage_percent,
        memory_used_bytes: m.memory_used_bytes,
        memory_total_bytes: m.memory_total_bytes,
        disks: m
            .disks
            .iter()
            .map(|d| DiskView {
                device: d.device.clone(),
                read_bytes: d.read_bytes,
                write_bytes: d.write_bytes,
                read_iops: d.read_iops,
                write_iops: d.write_iops,
                utilization_percent: d.utilization_percent,
            })
            .collect(),
        networks: m
            .networks
            .iter()
            .map(|n| NetView {
                interface: n.interface.clone(),
                rx_bytes: n.rx_bytes,
                tx_bytes: n.tx_bytes,
            })
            .collect(),
        vms: sorted(&m, SortBy::Name)
            .into_iter()
            .map(VmView::from)
            .collect(),
    };
    if ctx.format != Format::Table {
        return print_structured(&view, ctx.format);
    }
    println!(
        "CPU     {:.1}%\nMEMORY  {} of {}\n",
        view.cpu_percent,
        human_bytes(view.memory_used_bytes),
        human_bytes(view.memory_total_bytes)
    );
    let mut t = Table::new(&["DISK", "READ", "WRITE", "READ IOPS", "WRITE IOPS", "BUSY%"]);
    for d in &view.disks {
        t.row(vec![
            d.device.clone(),
            human_bytes(d.read_bytes),
            human_bytes(d.write_bytes),
            d.read_iops.to_string(),
            d.write_iops.to_string(),
            format!("{:.1}", d.utilization_percent),
        ]);
    }
    println!("{}", t.render());
    let mut t = Table::new(&["INTERFACE", "RX", "TX"]);
    for n in &view.networks {
        t.row(vec![
            n.interface.clone(),
            human_bytes(n.rx_bytes),
            human_bytes(n.tx_bytes),
        ]);
    }
    println!("{}", t.render());
    print!("{}", vm_table(&sorted(&m, SortBy::Name)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(name: &str, cpu: f64, mem: u64) -> VmMetrics {
        VmMetrics {
            vm_id: format!("{name}-0000-id"),
            name: name.into(),
            cpu_usage_percent: cpu,
            memory_used_bytes: mem,
            ..Default::default()
        }
    }

    #[test]
    fn top_sorts_by_cpu_memory_or_name() {
        let m = NodeMetrics {
            vms: vec![vm("b", 5.0, 300), vm("a", 50.0, 100), vm("c", 0.5, 900)],
            ..Default::default()
        };
        let names = |by| {
            sorted(&m, by)
                .iter()
                .map(|v| v.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(SortBy::Cpu), ["a", "b", "c"]);
        assert_eq!(names(SortBy::Memory), ["c", "b", "a"]);
        assert_eq!(names(SortBy::Name), ["a", "b", "c"]);
        let table = vm_table(&sorted(&m, SortBy::Cpu));
        assert!(table.starts_with("NAME"), "{table}");
        assert!(table.lines().nth(1).unwrap().contains("50.0"), "{table}");
    }
}
