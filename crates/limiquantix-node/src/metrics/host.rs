//! The host's own figures for StreamMetrics and the exporter: CPU and memory (the parsers of
//! [`crate::cluster::usage`] and [`crate::hostinfo`]), block devices from `/proc/diskstats`
//! and network interfaces from `/sys/class/net/*/statistics`. Reading is blocking.

use crate::cluster::usage::{CpuTimes, parse_proc_stat};
use crate::hostinfo::{MemFacts, parse_meminfo};
use limiquantix_proto::v1 as pb;
use std::path::Path;
use std::time::Instant;

/// Sectors of `/proc/diskstats` are 512 bytes whatever the device's block size.
const SECTOR: u64 = 512;

/// One line of `/proc/diskstats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskStat {
    /// Device name (`sda`, `nvme0n1`, `vda`).
    pub name: String,
    /// Reads completed.
    pub reads: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Writes completed.
    pub writes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Milliseconds spent doing I/O.
    pub io_ms: u64,
}

/// Parses `/proc/diskstats` (fields: major minor name reads merged sectors ms writes merged
/// sectors ms in-flight io_ms ...).
pub fn parse_diskstats(text: &str) -> Vec<DiskStat> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
            Some(DiskStat {
                name: (*f.get(2)?).to_string(),
                reads: n(3)?,
                read_bytes: n(5)? * SECTOR,
                writes: n(7)?,
                write_bytes: n(9)? * SECTOR,
                io_ms: n(12)?,
            })
        })
        .collect()
}

/// One host reading.
#[derive(Debug, Clone)]
pub struct HostSample {
    /// When it was read.
    pub at: Instant,
    /// `/proc/stat`.
    pub cpu: Option<CpuTimes>,
    /// `/proc/meminfo`.
    pub memory: MemFacts,
    /// Whole block devices (not partitions, loop or RAM devices).
    pub disks: Vec<DiskStat>,
    /// Network interfaces (`lo` left out).
    pub networks: Vec<pb::NetworkMetrics>,
}

/// Reads an interface's counters from `<sys_net>/<name>/statistics`.
fn interface(sys_net: &Path, name: &str) -> pb::NetworkMetrics {
    let dir = sys_net.join(name).join("statistics");
    let n = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    pb::NetworkMetrics {
        interface: name.to_string(),
        rx_bytes: n("rx_bytes"),
        tx_bytes: n("tx_bytes"),
        rx_packets: n("rx_packets"),
        tx_packets: n("tx_packets"),
        rx_errors: n("rx_errors"),
        tx_errors: n("tx_errors"),
    }
}

impl HostSample {
    /// Reads the host (blocking).
    pub fn read() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let whole = |name: &str| {
            !name.starts_with("loop")
                && !name.starts_with("ram")
                && Path::new("/sys/block").join(name).exists()
        };
        let sys_net = Path::new("/sys/class/net");
        let mut names: Vec<String> = std::fs::read_dir(sys_net)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "lo")
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        HostSample {
            at: Instant::now(),
            cpu: parse_proc_stat(&read("/proc/stat")),
            memory: parse_meminfo(&read("/proc/meminfo")),
            disks: parse_diskstats(&read("/proc/diskstats"))
                .into_iter()
                .filter(|d| whole(&d.name))
                .collect(),
            networks: names.iter().map(|n| interface(sys_net, n)).collect(),
        }
    }

    /// An empty reading (when the blocking read could not run).
    pub fn read_nothing() -> Self {
        HostSample {
            at: Instant::now(),
            cpu: None,
            memory: MemFacts::default(),
            disks: Vec::new(),
            networks: Vec::new(),
        }
    }

    /// Host CPU use (0–100 %) since `prev`; 0 without one.
    pub fn cpu_percent(&self, prev: Option<&HostSample>) -> f64 {
        let mut s = crate::cluster::usage::CpuSampler::default();
        match (prev.and_then(|p| p.cpu), self.cpu) {
            (Some(a), Some(b)) => {
                s.update(a);
                s.update(b)
            }
            _ => 0.0,
        }
    }

    /// The host part of a NodeMetrics message: rates (IOPS, busy share) since `prev`.
    pub fn node_metrics(&self, prev: Option<&HostSample>) -> pb::NodeMetrics {
        let secs = prev.map_or(0.0, |p| (self.at - p.at).as_secs_f64());
        let disks = self
            .disks
            .iter()
            .map(|d| {
                let before = prev.and_then(|p| p.disks.iter().find(|x| x.name == d.name));
                let rate = |now: u64, then: Option<u64>| match then {
                    Some(t) if secs > 0.0 => (now.saturating_sub(t) as f64 / secs) as u64,
                    _ => 0,
                };
                let busy = match before {
                    Some(b) if secs > 0.0 => {
                        (d.io_ms.saturating_sub(b.io_ms) as f64 / (secs * 10.0)).min(100.0)
                    }
                    _ => 0.0,
                };
                pb::DiskMetrics {
                    device: d.name.clone(),
                    read_bytes: d.read_bytes,
                    write_bytes: d.write_bytes,
                    read_iops: rate(d.reads, before.map(|b| b.reads)),
                    write_iops: rate(d.writes, before.map(|b| b.writes)),
                    utilization_percent: busy,
                }
            })
            .collect();
        pb::NodeMetrics {
            timestamp: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
            cpu_usage_percent: self.cpu_percent(prev),
            memory_used_bytes: self.memory.total.saturating_sub(self.memory.available),
            memory_total_bytes: self.memory.total,
            disks,
            networks: self.networks.clone(),
            vms: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISKSTATS: &str = "\
 254       0 vda 1000 10 20000 500 300 5 4000 700 0 900 1200 0 0 0 0 0 0
 254       1 vda1 990 10 19000 490 300 5 4000 700 0 880 1190
   7       0 loop0 5 0 10 0 0 0 0 0 0 4 0 0 0 0 0
 broken line
";

    #[test]
    fn diskstats_give_bytes_operations_and_busy_time() {
        let d = parse_diskstats(DISKSTATS);
        assert_eq!(d.len(), 3);
        assert_eq!(
            d[0],
            DiskStat {
                name: "vda".into(),
                reads: 1000,
                read_bytes: 20000 * 512,
                writes: 300,
                write_bytes: 4000 * 512,
                io_ms: 900,
            }
        );
    }

    #[test]
    fn rates_come_from_two_samples() {
        let t0 = Instant::now();
        let disk = |reads, io_ms| DiskStat {
            name: "vda".into(),
            reads,
            io_ms,
            ..DiskStat::default()
        };
        let sample = |at, reads, io_ms, cpu| HostSample {
            at,
            cpu: Some(cpu),
            memory: MemFacts {
                total: 1000,
                available: 250,
            },
            disks: vec![disk(reads, io_ms)],
            networks: vec![],
        };
        let a = sample(t0, 100, 0, (0, 0));
        let b = sample(t0 + std::time::Duration::from_secs(2), 300, 500, (50, 100));
        let m = b.node_metrics(Some(&a));
        assert_eq!(m.disks[0].read_iops, 100);
        assert_eq!(m.disks[0].utilization_percent, 25.0);
        assert_eq!(m.cpu_usage_percent, 50.0);
        assert_eq!((m.memory_used_bytes, m.memory_total_bytes), (750, 1000));
        assert_eq!(b.node_metrics(None).disks[0].read_iops, 0);
    }

    #[test]
    fn this_host_reads() {
        let s = HostSample::read();
        assert!(s.cpu.is_some() && s.memory.total > 0);
        assert!(s.networks.iter().all(|n| n.interface != "lo"));
    }
}
