//! The daemon's open-file limit: each running VM holds a few descriptors (its QEMU's pidfd, QMP,
//! serial log, guest agent), and the usual soft limit of 1024 serves fewer than 100 VMs. At start
//! the daemon raises its soft `RLIMIT_NOFILE` toward the hard limit; the backend then refuses to
//! define a VM past what the limit serves, with an error that says so.

/// The soft limit the daemon asks for (or the hard limit, when lower).
pub const WANTED: u64 = 65_536;

/// The process's soft and hard `RLIMIT_NOFILE`.
fn get() -> Option<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes into the struct we own.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim)
}

/// Raises the soft `RLIMIT_NOFILE` to [`WANTED`] (at most the hard limit) and logs the result
/// with the number of VMs it serves (`capacity`). Returns the soft limit in force.
pub fn raise(capacity: impl Fn(u64) -> usize) -> Option<u64> {
    let lim = get()?;
    let (soft, hard) = (lim.rlim_cur, lim.rlim_max);
    let target = WANTED.min(hard);
    let now = if soft < target {
        let new = libc::rlimit {
            rlim_cur: target,
            rlim_max: hard,
        };
        // SAFETY: setrlimit(2) with a soft limit not above the hard one.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            target
        } else {
            let err = std::io::Error::last_os_error();
            tracing::warn!(soft, hard, error = %err, "cannot raise the open-file limit");
            soft
        }
    } else {
        soft
    };
    let vms = capacity(now);
    if vms < 100 {
        tracing::warn!(
            nofile = now,
            hard,
            vms,
            "the open-file limit serves fewer than 100 VMs: raise LimitNOFILE= (systemd) or ulimit -n"
        );
    } else {
        tracing::info!(nofile = now, was = soft, hard, vms, "open-file limit");
    }
    Some(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_toward_the_hard_one() {
        let before = get().unwrap();
        let now = raise(|n| n as usize).unwrap();
        let after = get().unwrap();
        assert_eq!(after.rlim_cur, now);
        assert!(now >= before.rlim_cur.min(WANTED));
        assert!(now == WANTED.min(before.rlim_max) || before.rlim_cur >= WANTED);
    }
}
