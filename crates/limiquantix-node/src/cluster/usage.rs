//! What each heartbeat reports: CPU usage (from `/proc/stat` deltas), memory, load, the state
//! directory's filesystem, and every pool the node holds (health, capacity from `statvfs`,
//! mount path, volume count).

use crate::hostinfo::{self, MemFacts};
use crate::pools::{Pool, availability};
use limiquantix_storage::volume::pool_usage;
use limiquantix_proto::compute::v1 as compute;
use limiquantix_proto::compute::v1::storage_pool_status_report::HealthStatus;
use std::collections::BTreeMap;
use std::path::Path;

const MIB: u64 = 1024 * 1024;

/// Cumulative CPU time of all CPUs: (busy, total), in clock ticks.
pub type CpuTimes = (u64, u64);

/// Parses the `cpu` line of `/proc/stat`: total = user + nice + system + idle + iowait + irq +
/// softirq + steal (guest time is already in user), busy = total − idle − iowait.
pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// CPU usage between two samples of `/proc/stat`.
#[derive(Debug, Default)]
pub struct CpuSampler {
    last: Option<CpuTimes>,
}

impl CpuSampler {
    /// Takes a sample; returns the usage (0-100 %) since the previous one, 0 for the first.
    pub fn update(&mut self, now: CpuTimes) -> f64 {
        let previous = self.last.replace(now);
        let Some((busy0, total0)) = previous else {
            return 0.0;
        };
        let total = now.1.saturating_sub(total0);
        if total == 0 {
            return 0.0;
        }
        let busy = now.0.saturating_sub(busy0);
        (busy as f64 * 100.0 / total as f64).clamp(0.0, 100.0)
    }
}

/// One reading of the host (blocking: call from `spawn_blocking`).
#[derive(Debug, Clone, Default)]
pub struct HostUsage {
    /// `/proc/stat`, when readable.
    pub cpu_times: Option<CpuTimes>,
    /// `/proc/meminfo`.
    pub memory: MemFacts,
    /// `/proc/loadavg`: 1, 5 and 15 minutes.
    pub load: [f64; 3],
    /// The state directory's filesystem: (total, available, used) bytes.
    pub state_fs: Option<(u64, u64, u64)>,
    /// Every pool, by id.
    pub pools: Vec<compute::StoragePoolStatusReport>,
}

impl HostUsage {
    /// Reads the host and the pools.
    pub fn read(pools: &BTreeMap<String, Pool>, state_dir: &Path) -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let mut load = [0.0; 3];
        for (slot, field) in load
            .iter_mut()
            .zip(read("/proc/loadavg").split_whitespace())
        {
            *slot = field.parse().unwrap_or(0.0);
        }
        HostUsage {
            cpu_times: parse_proc_stat(&read("/proc/stat")),
            memory: hostinfo::parse_meminfo(&read("/proc/meminfo")),
            load,
            state_fs: hostinfo::filesystem_usage(state_dir),
            pools: pools.iter().map(|(id, p)| pool_report(id, p)).collect(),
        }
    }

    /// The heartbeat of node `node_id`, with `cpu_usage_percent` and the running VMs.
    pub fn heartbeat(
        &self,
        node_id: &str,
        cpu_usage_percent: f64,
        running_vm_count: u32,
    ) -> compute::UpdateHeartbeatRequest {
        let (disk_total, _, disk_used) = self.state_fs.unwrap_or_default();
        compute::UpdateHeartbeatRequest {
            node_id: node_id.to_string(),
            cpu_usage_percent,
            memory_used_mib: self.memory.total.saturating_sub(self.memory.available) / MIB,
            memory_total_mib: self.memory.total / MIB,
            running_vm_count,
            disk_used_bytes: disk_used,
            disk_total_bytes: disk_total,
            load_1m: self.load[0],
            load_5m: self.load[1],
            load_15m: self.load[2],
            storage_pools: self.pools.clone(),
            ..Default::default()
        }
    }
}

/// A pool's report: healthy with its capacity (the filesystem's, or its cap) and its volume
/// count, or in error with the reason when its directory or share is unavailable.
pub fn pool_report(id: &str, pool: &Pool) -> compute::StoragePoolStatusReport {
    let mut report = compute::StoragePoolStatusReport {
        pool_id: id.to_string(),
        mount_path: pool.dir.display().to_string(),
        ..Default::default()
    };
    if let Err(why) = availability(pool) {
        report.health = HealthStatus::HealthError as i32;
        report.error_message = why;
        return report;
    }
    let Some(usage) = pool_usage(&pool.dir) else {
        report.health = HealthStatus::HealthError as i32;
        report.error_message = "cannot read the pool directory".into();
        return report;
    };
    report.health = HealthStatus::HealthHealthy as i32;
    report.total_bytes = pool.capacity_bytes.unwrap_or(usage.total);
    report.available_bytes = match pool.capacity_bytes {
        Some(cap) => usage.available.min(cap.saturating_sub(usage.provisioned)),
        None => usage.available,
    };
    report.used_bytes = if pool.capacity_bytes.is_some() {
        usage.allocated
    } else {
        usage.used
    };
    report.volume_count = usage.volumes;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pools::Origin;

    #[test]
    fn cpu_usage_from_two_samples() {
        let a = parse_proc_stat("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(a, (200, 1000));
        let b = parse_proc_stat("cpu  200 0 200 1400 200 0 0 0 0 0\n").unwrap();
        let mut s = CpuSampler::default();
        assert_eq!(s.update(a), 0.0);
        assert_eq!(s.update(b), 20.0);
        assert_eq!(s.update(b), 0.0, "no time passed");
        assert_eq!(parse_proc_stat("intr 1 2"), None);
    }

    #[test]
    fn pools_report_capacity_files_and_errors() {
        let d = tempfile::tempdir().unwrap();
        let raw = d.path().join("a.img");
        std::fs::File::create(&raw).unwrap().set_len(1 << 20).unwrap();
        std::fs::write(d.path().join(".hidden"), b"x").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        let local = |dir: &Path| Pool::local(dir.to_owned(), Origin::Api, None);
        let r = pool_report("fast", &local(d.path()));
        assert_eq!(r.health, HealthStatus::HealthHealthy as i32);
        assert!(r.total_bytes > 0 && r.total_bytes >= r.used_bytes);
        assert_eq!(r.volume_count, 1);
        assert_eq!(r.mount_path, d.path().display().to_string());
        let missing = pool_report("gone", &local(&d.path().join("nope")));
        assert_eq!(missing.health, HealthStatus::HealthError as i32);
        assert!(missing.error_message.contains("missing"), "{missing:?}");
    }

    #[test]
    fn this_hosts_heartbeat_has_real_figures() {
        let d = tempfile::tempdir().unwrap();
        let pools = BTreeMap::from([(
            "p".to_string(),
            Pool::local(d.path().to_path_buf(), Origin::Api, None),
        )]);
        let usage = HostUsage::read(&pools, d.path());
        assert!(usage.cpu_times.is_some());
        let hb = usage.heartbeat("n1", 5.0, 2);
        assert!(hb.memory_total_mib > 0 && hb.memory_used_mib > 0);
        assert!(hb.memory_used_mib <= hb.memory_total_mib);
        assert_eq!(hb.storage_pools.len(), 1);
        assert_eq!(hb.running_vm_count, 2);
        assert!(hb.disk_total_bytes > 0);
    }
}
