//! What a VM uses of the host, as a backend's metrics collector last sampled it: CPU, memory,
//! disk and network counters ([`VmUsage`]). Sampled in the background on an interval, so reading
//! it never waits on a hypervisor or a guest.

use std::time::SystemTime;

/// Where a VM's `memory_used_bytes` comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MemorySource {
    /// Not sampled.
    #[default]
    Unknown,
    /// The resident set of the hypervisor process (`VmRSS`): guest RAM the guest touched plus
    /// the hypervisor's own memory.
    HostRss,
    /// The guest's own figure (balloon statistics or the guest agent).
    Guest,
}

impl MemorySource {
    /// A short stable name (`rss`, `guest`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            MemorySource::Unknown => "unknown",
            MemorySource::HostRss => "rss",
            MemorySource::Guest => "guest",
        }
    }
}

/// The I/O counters of one disk since its hypervisor process started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// The disk's device id in the definition.
    pub disk_id: String,
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Read operations.
    pub read_ops: u64,
    /// Write operations.
    pub write_ops: u64,
}

/// One sample of what a running VM uses. Counters are cumulative since its hypervisor process
/// started (they restart from zero with the VM).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VmUsage {
    /// CPU use over the last interval, in percent of one host CPU (like `top`: a VM busy on
    /// two vCPUs shows about 200).
    pub cpu_percent: f64,
    /// CPU time the hypervisor process consumed (user + system, all its threads).
    pub cpu_time_ns: u64,
    /// Memory in use, from [`VmUsage::memory_source`].
    pub memory_used_bytes: u64,
    /// Where `memory_used_bytes` comes from.
    pub memory_source: MemorySource,
    /// Bytes read from the VM's disks, summed over [`VmUsage::disks`].
    pub disk_read_bytes: u64,
    /// Bytes written to the VM's disks, summed over [`VmUsage::disks`].
    pub disk_write_bytes: u64,
    /// Per disk, in the definition's order.
    pub disks: Vec<DiskUsage>,
    /// Bytes the guest received (host-side tap NICs only; 0 for user-mode networking).
    pub net_rx_bytes: u64,
    /// Bytes the guest sent (host-side tap NICs only; 0 for user-mode networking).
    pub net_tx_bytes: u64,
    /// When the sample was taken.
    pub sampled_at: Option<SystemTime>,
}
