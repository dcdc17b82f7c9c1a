//! The collector task: every interval it reads each running VM's QEMU process from `/proc`
//! (on a blocking thread), its tap interfaces from `/sys/class/net`, and its disks' counters
//! over the VM's existing QMP connection (`query-blockstats`, never a second connection), then
//! replaces the [`UsageStore`]'s map in one step.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use super::{blockstats, procfs};
use crate::qmp::QmpClient;
use limiquantix_vm::model::VmId;
use limiquantix_vm::{DiskUsage, MemorySource, VmUsage};

/// The last sample of every running VM, shared by the collector and readers. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct UsageStore(Arc<RwLock<BTreeMap<VmId, VmUsage>>>);

impl UsageStore {
    /// A copy of every VM's last sample.
    pub fn snapshot(&self) -> BTreeMap<VmId, VmUsage> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces every sample.
    fn replace(&self, map: BTreeMap<VmId, VmUsage>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = map;
    }
}

/// A running VM as the collector samples it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The VM.
    pub id: VmId,
    /// Its QEMU process.
    pub pid: u32,
    /// Its live QMP connection, when it has one.
    pub qmp: Option<Arc<QmpClient>>,
    /// Its disks' device ids, in the definition's order.
    pub disks: Vec<String>,
    /// Its host tap interfaces.
    pub taps: Vec<String>,
}

/// CPU use in percent of one host CPU between two samples of a process's CPU time (ns) taken
/// `elapsed` apart; 0 when no time passed or the counter went backwards.
pub fn cpu_percent(before_ns: u64, after_ns: u64, elapsed: Duration) -> f64 {
    let wall = elapsed.as_nanos() as f64;
    if wall <= 0.0 {
        return 0.0;
    }
    after_ns.saturating_sub(before_ns) as f64 * 100.0 / wall
}

/// What the blocking read found for one VM: CPU ns, RSS, and the taps' (rx, tx).
type HostSide = (VmId, Option<(u64, u64)>, (u64, u64));

/// Reads every target's process and taps (blocking).
fn read_host(targets: &[Target]) -> Vec<HostSide> {
    let ticks = procfs::clock_ticks();
    let sys_net = Path::new("/sys/class/net");
    targets
        .iter()
        .map(|t| {
            let net = t
                .taps
                .iter()
                .filter_map(|i| procfs::read_interface(sys_net, i))
                .fold((0, 0), |(r, w), (a, b)| (r + a, w + b));
            (t.id.clone(), procfs::read_process(t.pid, ticks), net)
        })
        .collect()
}

/// Asks every target's QMP for its disks' counters, side by side, each within `timeout`.
async fn read_disks(targets: &[Target], timeout: Duration) -> BTreeMap<VmId, Vec<DiskUsage>> {
    let mut set = tokio::task::JoinSet::new();
    for t in targets {
        let Some(q) = t.qmp.clone().filter(|q| !q.is_closed()) else {
            continue;
        };
        let (id, disks) = (t.id.clone(), t.disks.clone());
        set.spawn(async move {
            match q.execute_timeout("query-blockstats", None, timeout).await {
                Ok(v) => Some((id, blockstats::parse(&v, &disks))),
                Err(e) => {
                    tracing::debug!(vm_id = %id, error = %e, "query-blockstats failed");
                    None
                }
            }
        });
    }
    let mut out = BTreeMap::new();
    while let Some(r) = set.join_next().await {
        if let Ok(Some((id, d))) = r {
            out.insert(id, d);
        }
    }
    out
}

/// The collector's memory between ticks: each VM's process, CPU time and when it was read.
#[derive(Default)]
struct Previous(BTreeMap<VmId, (u32, u64, Instant)>);

/// Takes one sample of `targets` into `store`.
async fn sample(targets: Vec<Target>, store: &UsageStore, prev: &mut Previous, qmp_wait: Duration) {
    let (host, disks) = tokio::join!(
        {
            let t = targets.clone();
            async move { tokio::task::spawn_blocking(move || read_host(&t)).await }
        },
        read_disks(&targets, qmp_wait)
    );
    let Ok(host) = host else { return };
    let (now, at) = (Instant::now(), SystemTime::now());
    let old = store.snapshot();
    let mut map = BTreeMap::new();
    let mut next = Previous::default();
    for (t, (id, proc_, (tap_rx, tap_tx))) in targets.iter().zip(host) {
        let Some((cpu_ns, rss)) = proc_ else { continue };
        let cpu = match prev.0.get(&id) {
            Some(&(pid, ns, then)) if pid == t.pid => cpu_percent(ns, cpu_ns, now - then),
            _ => 0.0,
        };
        next.0.insert(id.clone(), (t.pid, cpu_ns, now));
        // A failed QMP query keeps the disk counters of the last sample.
        let d = disks
            .get(&id)
            .cloned()
            .or_else(|| old.get(&id).map(|u| u.disks.clone()))
            .unwrap_or_default();
        let usage = VmUsage {
            cpu_percent: cpu,
            cpu_time_ns: cpu_ns,
            memory_used_bytes: rss,
            memory_source: MemorySource::HostRss,
            disk_read_bytes: d.iter().map(|x| x.read_bytes).sum(),
            disk_write_bytes: d.iter().map(|x| x.write_bytes).sum(),
            disks: d,
            // A tap's receive side is what the guest sent, and the other way round.
            net_rx_bytes: tap_tx,
            net_tx_bytes: tap_rx,
            sampled_at: Some(at),
        };
        map.insert(id, usage);
    }
    *prev = next;
    store.replace(map);
}

/// Runs the collector until `targets` answers `None` (its backend is gone): one sample every
/// `interval`, each QMP query bounded by half the interval (at most 2 s).
pub async fn run(
    interval: Duration,
    store: UsageStore,
    targets: impl Fn() -> Option<Vec<Target>> + Send + 'static,
) {
    let qmp_wait = (interval / 2).min(Duration::from_secs(2));
    let mut prev = Previous::default();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(t) = targets() else { return };
        sample(t, &store, &mut prev, qmp_wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time() {
        let s = Duration::from_secs(1);
        assert_eq!(cpu_percent(1_000_000_000, 1_250_000_000, s), 25.0);
        assert_eq!(cpu_percent(0, 2_000_000_000, s), 200.0, "two busy vCPUs");
        assert_eq!(cpu_percent(5, 1, s), 0.0, "a restarted process");
        assert_eq!(cpu_percent(0, 10, Duration::ZERO), 0.0);
    }

    #[tokio::test]
    async fn the_collector_samples_a_live_process_and_drops_a_dead_one() {
        let store = UsageStore::default();
        let id = VmId::generate();
        let target = Target {
            id: id.clone(),
            pid: std::process::id(),
            qmp: None,
            disks: vec!["disk0".into()],
            taps: vec!["no-such-tap".into()],
        };
        let mut prev = Previous::default();
        sample(
            vec![target.clone()],
            &store,
            &mut prev,
            Duration::from_secs(1),
        )
        .await;
        let first = store.snapshot()[&id].clone();
        assert!(first.memory_used_bytes > 0);
        assert_eq!(first.memory_source, MemorySource::HostRss);
        let gone = Target {
            pid: u32::MAX,
            ..target
        };
        sample(vec![gone], &store, &mut prev, Duration::from_secs(1)).await;
        assert!(store.snapshot().is_empty());
    }
}
