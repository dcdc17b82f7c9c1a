//! Facts about the host for GetNodeInfo, HealthCheck and the control plane: CPU
//! (`/proc/cpuinfo`, topology and clock from `/sys/devices/system/cpu`), memory (`/proc/meminfo`), kernel and host name (`uname(2)`), OS (`/etc/os-release`), uptime
//! (`/proc/uptime`), state-directory filesystem (`statvfs(3)`), and the QEMU version
//! (`qemu-system-x86_64 --version`, run asynchronously once at start-up).

use std::collections::BTreeSet;
use std::ffi::CStr;
use std::path::Path;

/// Processor facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuFacts {
    /// Model name.
    pub model: String,
    /// Physical packages.
    pub sockets: u32,
    /// Cores per package.
    pub cores_per_socket: u32,
    /// Threads per core.
    pub threads_per_core: u32,
    /// Logical CPUs.
    pub total_threads: u32,
    /// Clock of the first CPU, MHz.
    pub frequency_mhz: u64,
    /// CPU flags.
    pub features: Vec<String>,
}

/// Parses `/proc/cpuinfo` text (x86 layout; missing keys give zeros).
pub fn parse_cpuinfo(text: &str) -> CpuFacts {
    let mut facts = CpuFacts::default();
    let mut packages = BTreeSet::new();
    let mut siblings = 0u32;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => facts.total_threads += 1,
            "model name" if facts.model.is_empty() => facts.model = value.to_string(),
            "physical id" => {
                packages.insert(value.to_string());
            }
            "cpu cores" if facts.cores_per_socket == 0 => {
                facts.cores_per_socket = value.parse().unwrap_or(0)
            }
            "siblings" if siblings == 0 => siblings = value.parse().unwrap_or(0),
            "cpu MHz" if facts.frequency_mhz == 0 => {
                facts.frequency_mhz = value.parse::<f64>().map(|f| f as u64).unwrap_or(0)
            }
            "flags" if facts.features.is_empty() => {
                facts.features = value.split_whitespace().map(String::from).collect()
            }
            _ => {}
        }
    }
    facts.sockets = (packages.len() as u32).max(1);
    if facts.cores_per_socket == 0 {
        facts.cores_per_socket = (facts.total_threads / facts.sockets).max(1);
    }
    facts.threads_per_core = if siblings > 0 {
        (siblings / facts.cores_per_socket).max(1)
    } else {
        1
    };
    facts
}

/// Where Linux describes the CPUs.
const SYS_CPU: &str = "/sys/devices/system/cpu";

/// CPU topology from sysfs: `root` is `/sys/devices/system/cpu`. Returns (sockets, cores per
/// socket, threads per core, logical CPUs) over the online CPUs (an offline CPU has no
/// topology), or `None` when nothing is readable.
pub fn sysfs_topology(root: &Path) -> Option<(u32, u32, u32, u32)> {
    let mut packages = BTreeSet::new();
    let mut cores = BTreeSet::new();
    let mut threads = 0u32;
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let name = entry.file_name();
        let Some(index) = name.to_str().and_then(|n| n.strip_prefix("cpu")) else {
            continue;
        };
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let topology = entry.path().join("topology");
        let read = |f: &str| -> Option<i64> {
            std::fs::read_to_string(topology.join(f))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        let (Some(package), Some(core)) = (read("physical_package_id"), read("core_id")) else {
            continue;
        };
        packages.insert(package);
        cores.insert((package, core));
        threads += 1;
    }
    if threads == 0 {
        return None;
    }
    let sockets = packages.len() as u32;
    let all_cores = cores.len() as u32;
    Some((
        sockets,
        (all_cores / sockets).max(1),
        (threads / all_cores).max(1),
        threads,
    ))
}

/// The CPU facts of this host: `/proc/cpuinfo`, with the topology from sysfs when it has one
/// (cpuinfo lacks `physical id` in many guests and on other architectures) and the clock from
/// cpufreq when cpuinfo has none.
pub fn cpu_facts() -> CpuFacts {
    let mut cpu = parse_cpuinfo(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default());
    let root = Path::new(SYS_CPU);
    if let Some((sockets, cores, threads, total)) = sysfs_topology(root) {
        cpu.sockets = sockets;
        cpu.cores_per_socket = cores;
        cpu.threads_per_core = threads;
        cpu.total_threads = total;
    }
    if cpu.frequency_mhz == 0 {
        cpu.frequency_mhz = std::fs::read_to_string(root.join("cpu0/cpufreq/cpuinfo_max_freq"))
            .ok()
            .and_then(|khz| khz.trim().parse::<u64>().ok())
            .map_or(0, |khz| khz / 1000);
    }
    cpu
}

/// Memory facts, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemFacts {
    /// MemTotal.
    pub total: u64,
    /// MemAvailable.
    pub available: u64,
}

/// Parses `/proc/meminfo` text.
pub fn parse_meminfo(text: &str) -> MemFacts {
    let kib = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |k| k * 1024)
    };
    MemFacts {
        total: kib("MemTotal"),
        available: kib("MemAvailable"),
    }
}

/// Extracts the version from `qemu-system-x86_64 --version` output
/// ("QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)" → "7.2.19").
pub fn parse_qemu_version(output: &str) -> Option<String> {
    let rest = output.lines().next()?.split("version ").nth(1)?;
    let v = rest.split_whitespace().next()?;
    (!v.is_empty()).then(|| v.to_string())
}

/// The kernel release and host name from `uname(2)`.
pub fn uname() -> (String, String) {
    // SAFETY: `utsname` is plain old data; uname fills it with NUL-terminated strings.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return (String::new(), String::new());
    }
    let field = |f: &[libc::c_char]| {
        // SAFETY: uname NUL-terminates every field within its array.
        unsafe { CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    (field(&u.release), field(&u.nodename))
}

/// `NAME` and `VERSION_ID` from os-release text.
pub fn parse_os_release(text: &str) -> (String, String) {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    (get("NAME"), get("VERSION_ID"))
}

pub use limiquantix_storage::volume::filesystem_usage;

/// Host facts read from the filesystem (blocking: call from blocking context).
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// CPU.
    pub cpu: CpuFacts,
    /// Memory.
    pub memory: MemFacts,
    /// Kernel release.
    pub kernel: String,
    /// Host name.
    pub hostname: String,
    /// OS name.
    pub os_name: String,
    /// OS version.
    pub os_version: String,
    /// Seconds since boot.
    pub uptime_seconds: u64,
    /// `/etc/machine-id`, when present.
    pub machine_id: Option<String>,
}

impl HostFacts {
    /// Reads the facts of this host.
    pub fn read() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let (kernel, hostname) = uname();
        let (os_name, os_version) = parse_os_release(&read("/etc/os-release"));
        let uptime_seconds = read("/proc/uptime")
            .split_whitespace()
            .next()
            .and_then(|s| s.parse::<f64>().ok())
            .map_or(0, |f| f as u64);
        let machine_id = Some(read("/etc/machine-id").trim().to_string()).filter(|s| !s.is_empty());
        HostFacts {
            cpu: cpu_facts(),
            memory: parse_meminfo(&read("/proc/meminfo")),
            kernel,
            hostname,
            os_name,
            os_version,
            uptime_seconds,
            machine_id,
        }
    }
}

/// Runs `<qemu> --version` and returns its version, or `None` when it does not run.
pub async fn qemu_version(qemu_binary: &Path) -> Option<String> {
    let out = tokio::process::Command::new(qemu_binary)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_qemu_version(&String::from_utf8_lossy(&out.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\
physical id\t: 0\nsiblings\t: 2\ncpu cores\t: 1\ncpu MHz\t\t: 2200.152\nflags\t\t: fpu vmx sse2\n\n\
processor\t: 1\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nphysical id\t: 0\nsiblings\t: 2\ncpu cores\t: 1\n";

    #[test]
    fn cpuinfo() {
        let c = parse_cpuinfo(CPUINFO);
        assert_eq!(c.model, "Intel(R) Xeon(R) CPU @ 2.20GHz");
        assert_eq!(
            (
                c.sockets,
                c.cores_per_socket,
                c.threads_per_core,
                c.total_threads
            ),
            (1, 1, 2, 2)
        );
        assert_eq!(c.frequency_mhz, 2200);
        assert_eq!(c.features, ["fpu", "vmx", "sse2"]);
    }

    #[test]
    fn sysfs_topology_counts_packages_cores_and_threads() {
        let dir = tempfile::tempdir().unwrap();
        // 2 packages × 2 cores × 2 threads; cpu8 is offline (no topology), cpufreq is no CPU.
        for cpu in 0..8 {
            let t = dir.path().join(format!("cpu{cpu}/topology"));
            std::fs::create_dir_all(&t).unwrap();
            std::fs::write(t.join("physical_package_id"), format!("{}\n", cpu / 4)).unwrap();
            std::fs::write(t.join("core_id"), format!("{}\n", (cpu / 2) % 2)).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("cpu8")).unwrap();
        std::fs::create_dir_all(dir.path().join("cpufreq")).unwrap();
        assert_eq!(sysfs_topology(dir.path()), Some((2, 2, 2, 8)));
        assert_eq!(sysfs_topology(&dir.path().join("none")), None);
        let c = cpu_facts();
        assert!(c.sockets * c.cores_per_socket * c.threads_per_core >= 1);
        assert!(c.total_threads >= 1);
    }

    #[test]
    fn meminfo() {
        let m = parse_meminfo(
            "MemTotal:       24576000 kB\nMemFree: 1 kB\nMemAvailable:   20000000 kB\n",
        );
        assert_eq!(m.total, 24_576_000 * 1024);
        assert_eq!(m.available, 20_000_000 * 1024);
    }

    #[test]
    fn qemu_version_line() {
        assert_eq!(
            parse_qemu_version(
                "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)\nCopyright"
            ),
            Some("7.2.19".into())
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 10.1.0\n"),
            Some("10.1.0".into())
        );
        assert_eq!(parse_qemu_version("garbage"), None);
    }

    #[test]
    fn os_release() {
        let (n, v) = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n",
        );
        assert_eq!((n.as_str(), v.as_str()), ("Debian GNU/Linux", "12"));
    }

    #[test]
    fn this_host() {
        let facts = HostFacts::read();
        assert!(facts.cpu.total_threads >= 1);
        assert!(facts.memory.total > 0);
        assert!(!facts.kernel.is_empty());
        assert!(filesystem_usage(Path::new("/")).is_some_and(|(t, _, _)| t > 0));
    }
}
