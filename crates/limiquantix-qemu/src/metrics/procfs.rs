//! Reading a QEMU process's CPU time and memory from `/proc`, and a tap interface's byte
//! counters from `/sys/class/net`. Blocking: call from a blocking thread.

use std::path::Path;

/// User + system CPU time of a whole process, in clock ticks, from the text of
/// `/proc/<pid>/stat` (fields 14 and 15; the thread group leader's line already sums every
/// thread, live and exited). The command name (field 2) may hold spaces and parentheses, so
/// fields are counted after its last `)`.
pub fn parse_stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: state is field 3, so utime (14) is the 12th field here.
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The resident set (`VmRSS`) in bytes, from the text of `/proc/<pid>/status`.
pub fn parse_status_rss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions and touches no memory of ours.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// A process's CPU time in nanoseconds and its resident set in bytes; `None` when it is gone.
pub fn read_process(pid: u32, ticks_per_s: u64) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_ticks(&stat)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = parse_status_rss(&status).unwrap_or(0);
    Some((ticks.saturating_mul(1_000_000_000) / ticks_per_s, rss))
}

/// A host interface's `(rx_bytes, tx_bytes)` from `<sys_net>/<ifname>/statistics`; `None` when
/// the interface does not exist.
pub fn read_interface(sys_net: &Path, ifname: &str) -> Option<(u64, u64)> {
    let dir = sys_net.join(ifname).join("statistics");
    let read = |f: &str| -> Option<u64> {
        std::fs::read_to_string(dir.join(f))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    Some((read("rx_bytes")?, read("tx_bytes")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_sums_user_and_system_time_after_an_awkward_name() {
        let line = "4242 (qemu (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 75 3 4 20 0 5 0 1000 123456 789 18446744073709551615";
        assert_eq!(parse_stat_ticks(line), Some(325));
        assert_eq!(parse_stat_ticks("4242 (qemu) S 1"), None);
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn status_gives_the_resident_set_in_bytes() {
        let text = "Name:\tqemu-system-x86\nVmPeak:\t 999 kB\nVmRSS:\t   65536 kB\nThreads:\t4\n";
        assert_eq!(parse_status_rss(text), Some(64 << 20));
        assert_eq!(parse_status_rss("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let (ns, rss) = read_process(std::process::id(), clock_ticks()).unwrap();
        assert!(rss > 0);
        assert!(ns < 3_600_000_000_000_000, "{ns}");
        assert_eq!(read_process(u32::MAX, 100), None);
    }

    #[test]
    fn interfaces_are_read_from_their_statistics() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("tap0/statistics");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::write(s.join("rx_bytes"), "123\n").unwrap();
        std::fs::write(s.join("tx_bytes"), "456\n").unwrap();
        assert_eq!(read_interface(d.path(), "tap0"), Some((123, 456)));
        assert_eq!(read_interface(d.path(), "tap1"), None);
    }
}
