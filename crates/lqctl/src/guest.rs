//! `lqctl vm exec|cp|fsfreeze|fsthaw` and `vm stop --guest`: operations inside a running guest
//! through its agent. `exec`'s guest exit code becomes lqctl's ([`GuestExit`]).

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use limiquantix_proto::v1::{
    ExecuteInGuestRequest, ExecuteInGuestResponse, GuestShutdownRequest, QuiesceFilesystemsRequest,
    ReadGuestFileRequest, ThawFilesystemsRequest, WriteGuestFileRequest,
};

use crate::ctx::Ctx;
use crate::daemon::CallExt as _;
use crate::lookup::find;
use crate::units::parse_duration;

/// Bytes per WriteGuestFile request (well under the daemon's request limit).
const WRITE_PIECE: usize = 2 << 20;
/// Bytes per ReadGuestFile request.
const READ_PIECE: u64 = 8 << 20;

/// The guest command ended with this status: lqctl exits with it (no message of its own).
#[derive(Debug)]
pub struct GuestExit(pub u8);

impl std::fmt::Display for GuestExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the guest command exited with status {}", self.0)
    }
}

impl std::error::Error for GuestExit {}

/// The status lqctl ends with when `e` is a guest command's [`GuestExit`].
pub fn exit_code(e: &anyhow::Error) -> Option<u8> {
    e.downcast_ref::<GuestExit>().map(|g| g.0)
}

/// `vm exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
    /// How long to wait (at most 5m); the command is killed in the guest after it.
    #[arg(long, value_parser = parse_duration, default_value = "30s", value_name = "DURATION")]
    pub timeout: Duration,
    /// Environment of the command, NAME=VALUE (repeatable; replaces the guest's environment).
    #[arg(long, short = 'e', value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Send lqctl's standard input to the command (at most 1 MiB).
    #[arg(long, short = 'i')]
    pub stdin: bool,
    /// The program and its arguments (an argv: use `sh -c '...'` for a shell).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `vm cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Source: a local path or VM:/guest/path.
    pub src: String,
    /// Destination: a local path or VM:/guest/path (exactly one side is in a guest).
    pub dst: String,
    /// Permission bits of a file written into the guest, octal (e.g. 644).
    #[arg(long, value_parser = parse_mode)]
    pub mode: Option<u32>,
}

/// `vm fsfreeze`.
#[derive(Debug, Args)]
pub struct FreezeArgs {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
    /// Thaw automatically after this long if no fsthaw comes (at most 10m).
    #[arg(long, value_parser = parse_duration, default_value = "60s", value_name = "DURATION")]
    pub timeout: Duration,
}

/// One side of `vm cp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A file of this machine.
    Local(PathBuf),
    /// A file in a VM's guest.
    Guest {
        /// The VM as given.
        vm: String,
        /// The guest path.
        path: String,
    },
}

/// `VM:/path` is in a guest (the VM part has no `/`, the path is absolute); anything else is
/// local (write `./a:b` for a local file with a colon).
pub fn parse_place(s: &str) -> Place {
    match s.split_once(':') {
        Some((vm, path)) if !vm.is_empty() && !vm.contains('/') && path.starts_with('/') => {
            Place::Guest {
                vm: vm.to_owned(),
                path: path.to_owned(),
            }
        }
        _ => Place::Local(PathBuf::from(s)),
    }
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{s:?} is not an octal permission mode (e.g. 644)"))
}

/// lqctl's exit status for a command's answer: its exit code, 128 + a signal, 124 after a
/// timeout (like `timeout(1)`).
pub fn exit_status(r: &ExecuteInGuestResponse) -> u8 {
    if r.timed_out {
        124
    } else if r.signal != 0 {
        (128 + r.signal).clamp(0, 255) as u8
    } else {
        r.exit_code.clamp(0, 255) as u8
    }
}

/// `vm exec`: output written through; the guest's status ends lqctl.
pub async fn exec(ctx: &Ctx, a: ExecArgs) -> anyhow::Result<()> {
    let vm = find(ctx, &a.vm).await?;
    let mut environment = std::collections::BTreeMap::new();
    for e in &a.env {
        let (k, v) = e
            .split_once('=')
            .with_context(|| format!("--env {e:?}: expected NAME=VALUE"))?;
        environment.insert(k.to_owned(), v.to_owned());
    }
    let mut input_data = Vec::new();
    if a.stdin {
        std::io::stdin().read_to_end(&mut input_data)?;
    }
    let r = ctx
        .daemon
        .node()
        .execute_in_guest(ExecuteInGuestRequest {
            vm_id: vm.vm_id,
            command: a.command[0].clone(),
            args: a.command[1..].to_vec(),
            timeout_seconds: u32::try_from(a.timeout.as_secs()).unwrap_or(u32::MAX),
            wait_for_exit: true,
            environment,
            input_data,
            ..Default::default()
        })
        .await
        .or_fail(&ctx.daemon)?;
    std::io::stdout().write_all(r.stdout.as_bytes())?;
    std::io::stdout().flush()?;
    std::io::stderr().write_all(r.stderr.as_bytes())?;
    for (cut, name) in [
        (r.stdout_truncated, "stdout"),
        (r.stderr_truncated, "stderr"),
    ] {
        if cut {
            eprintln!("lqctl: the guest command's {name} was cut at 1 MiB");
        }
    }
    if r.timed_out {
        eprintln!("lqctl: {}", r.error);
    }
    match exit_status(&r) {
        0 => Ok(()),
        code => Err(GuestExit(code).into()),
    }
}

/// `vm cp`: whole files, in pieces.
pub async fn cp(ctx: &Ctx, a: CpArgs) -> anyhow::Result<()> {
    match (parse_place(&a.src), parse_place(&a.dst)) {
        (Place::Local(src), Place::Guest { vm, path }) => {
            let data = tokio::fs::read(&src)
                .await
                .with_context(|| format!("reading {}", src.display()))?;
            let vm = find(ctx, &vm).await?;
            let mut node = ctx.daemon.node();
            let mut pieces = data.chunks(WRITE_PIECE).peekable();
            let mut first = true;
            while first || pieces.peek().is_some() {
                let piece = pieces.next().unwrap_or_default();
                let last = pieces.peek().is_none();
                node.write_guest_file(WriteGuestFileRequest {
                    vm_id: vm.vm_id.clone(),
                    path: path.clone(),
                    data: piece.to_vec(),
                    mode: if last { a.mode.unwrap_or(0) } else { 0 },
                    append: !first,
                    ..Default::default()
                })
                .await
                .or_fail(&ctx.daemon)?;
                first = false;
            }
            Ok(())
        }
        (Place::Guest { vm, path }, Place::Local(dst)) => {
            let vm = find(ctx, &vm).await?;
            let mut node = ctx.daemon.node();
            let mut data = Vec::new();
            loop {
                let r = node
                    .read_guest_file(ReadGuestFileRequest {
                        vm_id: vm.vm_id.clone(),
                        path: path.clone(),
                        offset: data.len() as u64,
                        max_size: READ_PIECE,
                    })
                    .await
                    .or_fail(&ctx.daemon)?;
                data.extend(r.data);
                if r.eof {
                    break;
                }
            }
            tokio::fs::write(&dst, data)
                .await
                .with_context(|| format!("writing {}", dst.display()))
        }
        _ => bail!("vm cp copies between this machine and a guest: write one side as VM:/path"),
    }
}

/// `vm stop --guest`: the guest's agent powers it off (or reboots it).
pub async fn shutdown(ctx: &Ctx, vm: &str, reboot: bool) -> anyhow::Result<()> {
    let vm = find(ctx, vm).await?;
    ctx.daemon
        .node()
        .guest_shutdown(GuestShutdownRequest {
            vm_id: vm.vm_id.clone(),
            reboot,
            ..Default::default()
        })
        .await
        .or_fail(&ctx.daemon)?;
    println!("{}: the guest is shutting down", vm.name);
    Ok(())
}

/// `vm fsfreeze`.
pub async fn freeze(ctx: &Ctx, a: FreezeArgs) -> anyhow::Result<()> {
    let vm = find(ctx, &a.vm).await?;
    let r = ctx
        .daemon
        .node()
        .quiesce_filesystems(QuiesceFilesystemsRequest {
            vm_id: vm.vm_id.clone(),
            timeout_seconds: u32::try_from(a.timeout.as_secs()).unwrap_or(u32::MAX),
            ..Default::default()
        })
        .await
        .or_fail(&ctx.daemon)?;
    println!(
        "{}: {} filesystem(s) frozen; thawed automatically in {} s unless `lqctl vm fsthaw` comes first",
        vm.name,
        r.frozen_count,
        a.timeout.as_secs()
    );
    Ok(())
}

/// `vm fsthaw`.
pub async fn thaw(ctx: &Ctx, vm: &str) -> anyhow::Result<()> {
    let vm = find(ctx, vm).await?;
    let r = ctx
        .daemon
        .node()
        .thaw_filesystems(ThawFilesystemsRequest {
            vm_id: vm.vm_id.clone(),
            ..Default::default()
        })
        .await
        .or_fail(&ctx.daemon)?;
    println!("{}: {} filesystem(s) thawed", vm.name, r.thawed_count);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_places() {
        let guest = |vm: &str, path: &str| Place::Guest {
            vm: vm.into(),
            path: path.into(),
        };
        assert_eq!(parse_place("web1:/etc/hosts"), guest("web1", "/etc/hosts"));
        assert_eq!(parse_place("0d6b5c3e:/a:b"), guest("0d6b5c3e", "/a:b"));
        for local in ["./a:b", "/tmp/x", "a:b", "file", "dir/x:/y", ":/x"] {
            assert_eq!(parse_place(local), Place::Local(local.into()), "{local}");
        }
    }

    #[test]
    fn exit_status_follows_the_guest() {
        let r = |exit_code, signal, timed_out| ExecuteInGuestResponse {
            exit_code,
            signal,
            timed_out,
            ..Default::default()
        };
        assert_eq!(exit_status(&r(0, 0, false)), 0);
        assert_eq!(exit_status(&r(3, 0, false)), 3);
        assert_eq!(exit_status(&r(-1, 9, false)), 137);
        assert_eq!(exit_status(&r(-1, 0, true)), 124);
        assert_eq!(exit_status(&r(300, 0, false)), 255);
    }

    #[test]
    fn a_guest_exit_becomes_lqctls_status() {
        assert_eq!(exit_code(&GuestExit(3).into()), Some(3));
        let wrapped = anyhow::Error::from(GuestExit(7)).context("vm exec");
        assert_eq!(exit_code(&wrapped), Some(7));
        assert_eq!(exit_code(&anyhow::anyhow!("refused")), None);
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("644"), Ok(0o644));
        assert!(parse_mode("9").is_err() && parse_mode("17777").is_err());
    }
}
