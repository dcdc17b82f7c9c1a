//! What a VM's guest agent answers.

/// What a VM's guest agent answered to a ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPing {
    /// Whether the agent answered.
    pub connected: bool,
    /// The agent's version, when it answered.
    pub version: String,
    /// Why it did not answer, for people.
    pub error: String,
}

/// What a VM's guest agent says about the guest (qemu-guest-agent's `guest-info`,
/// `guest-get-host-name`, `guest-get-osinfo`, `guest-network-get-interfaces`, and for
/// [`GuestUsage`] `guest-get-fsinfo` and the guest's `/proc` files read through
/// `guest-file-read`). Anything the agent does not report is empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuestFacts {
    /// The agent's version.
    pub agent_version: String,
    /// Commands the agent has enabled.
    pub capabilities: Vec<String>,
    /// The guest's host name.
    pub hostname: String,
    /// OS name (`Debian GNU/Linux`).
    pub os_name: String,
    /// OS version (`12 (bookworm)`).
    pub os_version: String,
    /// Kernel release (`6.1.0-26-amd64`).
    pub kernel_release: String,
    /// Network interfaces, loopback included, in the agent's order.
    pub interfaces: Vec<GuestNic>,
    /// Memory, load, uptime and filesystems as the guest sees them.
    pub usage: GuestUsage,
}

/// Resource use as the guest sees it. Memory, load and uptime come from a Linux guest's
/// `/proc/meminfo`, `/proc/loadavg` and `/proc/uptime` (zero when the agent cannot read them,
/// e.g. a Windows guest or an agent with file commands disabled); filesystems from
/// `guest-get-fsinfo`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuestUsage {
    /// `MemTotal`, bytes.
    pub memory_total: u64,
    /// `MemAvailable`, bytes.
    pub memory_available: u64,
    /// `SwapTotal`, bytes.
    pub swap_total: u64,
    /// `SwapFree`, bytes.
    pub swap_free: u64,
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    /// Processes (the total of `/proc/loadavg`'s fourth field).
    pub processes: u32,
    /// Seconds since the guest booted.
    pub uptime_seconds: u64,
    /// Mounted filesystems with their sizes.
    pub filesystems: Vec<GuestFilesystem>,
}

/// One mounted filesystem inside the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestFilesystem {
    /// Mount point.
    pub mount_point: String,
    /// Device (`sda1`, ...).
    pub device: String,
    /// Filesystem type.
    pub fstype: String,
    /// Size in bytes (0 when the agent does not say).
    pub total_bytes: u64,
    /// Bytes in use.
    pub used_bytes: u64,
}

impl GuestUsage {
    /// Fills memory, load, processes and uptime from the text of a Linux guest's
    /// `/proc/meminfo`, `/proc/loadavg` and `/proc/uptime` (any may be empty).
    pub fn read_proc(&mut self, meminfo: &str, loadavg: &str, uptime: &str) {
        for line in meminfo.lines() {
            let mut it = line.split_whitespace();
            let (Some(key), Some(kib)) = (it.next(), it.next().and_then(|v| v.parse::<u64>().ok()))
            else {
                continue;
            };
            let bytes = kib * 1024;
            match key {
                "MemTotal:" => self.memory_total = bytes,
                "MemAvailable:" => self.memory_available = bytes,
                "SwapTotal:" => self.swap_total = bytes,
                "SwapFree:" => self.swap_free = bytes,
                _ => {}
            }
        }
        let fields: Vec<&str> = loadavg.split_whitespace().collect();
        for (slot, f) in self.load.iter_mut().zip(&fields) {
            *slot = f.parse().unwrap_or(0.0);
        }
        if let Some(total) = fields.get(3).and_then(|f| f.split_once('/')) {
            self.processes = total.1.parse().unwrap_or(0);
        }
        if let Some(up) = uptime
            .split_whitespace()
            .next()
            .and_then(|u| u.parse::<f64>().ok())
        {
            self.uptime_seconds = up as u64;
        }
    }
}

/// One network interface inside the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestNic {
    /// Interface name (`eth0`, `enp0s3`).
    pub name: String,
    /// MAC address, when it has one.
    pub mac: String,
    /// Addresses with their prefix lengths.
    pub addresses: Vec<(std::net::IpAddr, u8)>,
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn a_linux_guests_proc_files_parse() {
        let mut u = GuestUsage::default();
        u.read_proc(
            "MemTotal:        1004552 kB\nMemFree:          500000 kB\nMemAvailable:     812340 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n",
            "0.12 0.34 0.56 1/123 4567\n",
            "3723.45 7000.00\n",
        );
        assert_eq!(u.memory_total, 1_004_552 * 1024);
        assert_eq!(u.memory_available, 812_340 * 1024);
        assert_eq!(u.load, [0.12, 0.34, 0.56]);
        assert_eq!((u.processes, u.uptime_seconds), (123, 3723));
        let mut empty = GuestUsage::default();
        empty.read_proc("", "", "");
        assert_eq!(empty, GuestUsage::default());
    }
}
