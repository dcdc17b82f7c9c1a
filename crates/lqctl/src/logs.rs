//! `lqctl vm logs` (and `vm console --log`): the tail of a VM's serial console log or QEMU's own
//! log, optionally followed.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use limiquantix_proto::v1::{GetVmLogsRequest, VmStatusResponse};

use crate::ctx::Ctx;
use crate::daemon::CallExt as _;

/// The lines of `new` after what `old` ended with: the last place in `new` where the last lines
/// of `old` (up to 20) appear, trying shorter anchors when a longer one is not found. When `old`
/// and `new` share nothing, all of `new` (the log moved on by more than a fetch).
fn new_lines<'a>(old: &[&str], new: &'a [&'a str]) -> &'a [&'a str] {
    for k in (1..=old.len().min(20).min(new.len())).rev() {
        let anchor = &old[old.len() - k..];
        if let Some(at) = (0..=new.len() - k)
            .rev()
            .find(|&i| &new[i..i + k] == anchor)
        {
            return &new[at + k..];
        }
    }
    new
}

/// The text up to and including its last newline (a line still being written is left out).
fn complete_lines(text: &str) -> &str {
    text.rfind('\n').map_or("", |i| &text[..=i])
}

/// Prints the last `lines` lines of the VM's serial console log (QEMU's own log with `qemu`);
/// with `follow`, keeps printing new lines as they come until interrupted.
pub async fn show(
    ctx: &Ctx,
    vm: &VmStatusResponse,
    lines: u32,
    follow: bool,
    qemu: bool,
) -> anyhow::Result<()> {
    let fetch = |lines: u32| {
        let mut node = ctx.daemon.node();
        let vm_id = vm.vm_id.clone();
        async move {
            let r = node
                .get_vm_logs(GetVmLogsRequest { vm_id, lines })
                .await
                .or_fail(&ctx.daemon)?;
            Ok::<_, anyhow::Error>(if qemu { r.qemu_log } else { r.serial_log })
        }
    };
    let first = fetch(lines).await?;
    // When following, a last line without its newline yet is printed once it is complete.
    let mut previous = if follow {
        complete_lines(&first).to_owned()
    } else {
        first
    };
    let mut out = std::io::stdout().lock();
    out.write_all(previous.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")?;
    drop(out);
    if !follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let current = complete_lines(&fetch(1000).await?).to_owned();
        if current == previous {
            continue;
        }
        let old: Vec<&str> = previous.lines().collect();
        let new: Vec<&str> = current.lines().collect();
        let fresh = new_lines(&old, &new);
        let mut out = std::io::stdout().lock();
        for line in fresh {
            writeln!(out, "{line}").context("cannot write to stdout")?;
        }
        out.flush().context("cannot write to stdout")?;
        previous = current;
    }
}

#[cfg(test)]
mod tests {
    use super::new_lines;

    #[test]
    fn follow_prints_only_new_lines() {
        assert_eq!(
            new_lines(&["a", "b", "c"], &["b", "c", "d", "e"]),
            ["d", "e"]
        );
        assert_eq!(new_lines(&["a", "b"], &["a", "b"]), [] as [&str; 0]);
        assert_eq!(new_lines(&[], &["x"]), ["x"]);
        assert_eq!(new_lines(&["a"], &["x", "y"]), ["x", "y"]);
        // A longer fetch than the first one: the old tail is found inside it.
        assert_eq!(new_lines(&["c", "d"], &["a", "b", "c", "d", "e"]), ["e"]);
        // Repeated lines: the latest occurrence of the anchor wins.
        assert_eq!(
            new_lines(&["ok", "ok"], &["ok", "ok", "ok", "new"]),
            ["new"]
        );
    }

    #[test]
    fn partial_last_lines_wait_for_their_newline() {
        assert_eq!(super::complete_lines("a\nb\npart"), "a\nb\n");
        assert_eq!(super::complete_lines("a\n"), "a\n");
        assert_eq!(super::complete_lines("part"), "");
    }
}
