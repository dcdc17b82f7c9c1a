//! `lqctl vm snapshot ...`: take, list (as a tree, `*` on the current one), revert to and
//! delete VM snapshots. A snapshot is named by its id (`snap-<n>`) or its name.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use limiquantix_proto::v1::{
    CreateSnapshotRequest, DeleteSnapshotRequest, RevertSnapshotRequest, SnapshotResponse,
    VmIdRequest,
};
use serde::Serialize;

use crate::ctx::Ctx;
use crate::daemon::CallExt as _;
use crate::lookup::find;
use crate::output::{Format, Table, print_structured};
use crate::units::human_duration;
use crate::view::state_name;

/// Snapshot commands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot: with memory while the VM runs (unless --disk-only), disks only while
    /// it is stopped.
    Create(CreateArgs),
    /// List a VM's snapshots as a tree, oldest first; `*` marks the current one.
    #[command(visible_alias = "ls")]
    List(VmOnly),
    /// Go back to a snapshot (a memory snapshot of a stopped VM starts it).
    Revert(RevertArgs),
    /// Delete a snapshot; its children stay.
    #[command(visible_alias = "rm")]
    Delete(SnapArg),
}

/// `vm snapshot create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
    /// The snapshot's name: 1 to 64 of letters, digits, '.', '_', '-'.
    pub name: String,
    /// Free text.
    #[arg(long, short = 'd', default_value = "")]
    pub description: String,
    /// Freeze the guest's filesystems through its agent (disk-only snapshots of a running VM).
    #[arg(long)]
    pub quiesce: bool,
    /// Disks only, no memory, even when the VM runs.
    #[arg(long)]
    pub disk_only: bool,
}

/// One VM.
#[derive(Debug, Args)]
pub struct VmOnly {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
}

/// A VM and one of its snapshots.
#[derive(Debug, Args)]
pub struct SnapArg {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
    /// The snapshot: id (snap-<n>) or name.
    pub snapshot: String,
}

/// `vm snapshot revert`.
#[derive(Debug, Args)]
pub struct RevertArgs {
    #[command(flatten)]
    pub target: SnapArg,
    /// Reverting a disk-only snapshot of a running VM forces the VM off first.
    #[arg(long)]
    pub stop_if_running: bool,
}

/// A snapshot as lqctl prints it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SnapshotView {
    /// Its id (`snap-<n>`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// When it was taken, in seconds since the Unix epoch.
    pub created_at: i64,
    /// The VM's state when it was taken.
    pub vm_state: String,
    /// Its parent's id; empty for a root.
    pub parent_id: String,
    /// It is the current snapshot.
    pub current: bool,
    /// It holds memory.
    pub memory: bool,
}

impl From<&SnapshotResponse> for SnapshotView {
    fn from(s: &SnapshotResponse) -> Self {
        Self {
            id: s.snapshot_id.clone(),
            name: s.name.clone(),
            description: s.description.clone(),
            created_at: s.created_at.map_or(0, |t| t.seconds),
            vm_state: state_name(s.vm_state),
            parent_id: s.parent_id.clone(),
            current: s.current,
            memory: s.memory,
        }
    }
}

/// Runs a snapshot command.
pub async fn run(ctx: &Ctx, command: SnapshotCommand) -> anyhow::Result<()> {
    match command {
        SnapshotCommand::Create(a) => {
            let vm = find(ctx, &a.vm).await?;
            let req = CreateSnapshotRequest {
                vm_id: vm.vm_id.clone(),
                name: a.name,
                description: a.description,
                quiesce: a.quiesce,
                disk_only: a.disk_only,
            };
            let s = ctx
                .daemon
                .node()
                .create_snapshot(req)
                .await
                .or_fail(&ctx.daemon)?;
            let view = SnapshotView::from(&s);
            match ctx.format {
                Format::Table => {
                    println!("{}  snapshot {} ({}) taken", vm.name, view.id, view.name)
                }
                f => print_structured(&view, f)?,
            }
            Ok(())
        }
        SnapshotCommand::List(a) => {
            let vm = find(ctx, &a.vm).await?;
            let list = snapshots(ctx, &vm.vm_id).await?;
            match ctx.format {
                Format::Table => print!("{}", snapshot_tree(&list, SystemTime::now())),
                f => print_structured(&list, f)?,
            }
            Ok(())
        }
        SnapshotCommand::Revert(a) => {
            let (vm, snap) = target(ctx, &a.target).await?;
            let req = RevertSnapshotRequest {
                vm_id: vm.clone(),
                snapshot_id: snap.clone(),
                stop_if_running: a.stop_if_running,
            };
            ctx.daemon
                .node()
                .revert_snapshot(req)
                .await
                .or_fail(&ctx.daemon)?;
            report(ctx, &a.target.vm, &snap, "reverted to")
        }
        SnapshotCommand::Delete(a) => {
            let (vm, snap) = target(ctx, &a).await?;
            let req = DeleteSnapshotRequest {
                vm_id: vm,
                snapshot_id: snap.clone(),
            };
            ctx.daemon
                .node()
                .delete_snapshot(req)
                .await
                .or_fail(&ctx.daemon)?;
            report(ctx, &a.vm, &snap, "deleted")
        }
    }
}

fn report(ctx: &Ctx, vm: &str, snap: &str, what: &str) -> anyhow::Result<()> {
    match ctx.format {
        Format::Table => println!("{vm}  {what} snapshot {snap}"),
        f => print_structured(
            &serde_json::json!({ "vm": vm, "snapshot": snap, "result": what }),
            f,
        )?,
    }
    Ok(())
}

async fn snapshots(ctx: &Ctx, vm_id: &str) -> anyhow::Result<Vec<SnapshotView>> {
    let req = VmIdRequest {
        vm_id: vm_id.to_owned(),
    };
    let list = ctx
        .daemon
        .node()
        .list_snapshots(req)
        .await
        .or_fail(&ctx.daemon)?;
    Ok(list.snapshots.iter().map(SnapshotView::from).collect())
}

/// The VM's id and the id of the snapshot `a` names.
async fn target(ctx: &Ctx, a: &SnapArg) -> anyhow::Result<(String, String)> {
    let vm = find(ctx, &a.vm).await?;
    let list = snapshots(ctx, &vm.vm_id).await?;
    let id = resolve_snapshot(&list, &a.snapshot).map_err(anyhow::Error::msg)?;
    Ok((vm.vm_id, id))
}

/// The id of the snapshot `query` names: an id, else a name.
pub fn resolve_snapshot(list: &[SnapshotView], query: &str) -> Result<String, String> {
    if let Some(s) = list
        .iter()
        .find(|s| s.id == query)
        .or_else(|| list.iter().find(|s| s.name == query))
    {
        return Ok(s.id.clone());
    }
    let known: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
    if known.is_empty() {
        return Err(format!("no snapshot {query:?}: the VM has no snapshots"));
    }
    Err(format!(
        "no snapshot {query:?} (the VM has: {})",
        known.join(", ")
    ))
}

/// The snapshots as a tree: children under their parent (oldest first), indented, `*` on the
/// current one.
pub fn snapshot_tree(list: &[SnapshotView], now: SystemTime) -> String {
    let mut t = Table::new(&["", "ID", "NAME", "STATE", "MEMORY", "AGE", "DESCRIPTION"]);
    let known = |id: &str| list.iter().any(|s| s.id == id);
    let roots = list
        .iter()
        .filter(|s| s.parent_id.is_empty() || !known(&s.parent_id));
    let mut stack: Vec<(&SnapshotView, usize)> = roots.rev().map(|s| (s, 0)).collect();
    while let Some((s, depth)) = stack.pop() {
        let created = UNIX_EPOCH + Duration::from_secs(u64::try_from(s.created_at).unwrap_or(0));
        let age = now.duration_since(created).unwrap_or_default();
        let indent = if depth == 0 {
            String::new()
        } else {
            format!("{}└ ", "  ".repeat(depth - 1))
        };
        t.row(vec![
            if s.current { "*".into() } else { String::new() },
            format!("{indent}{}", s.id),
            s.name.clone(),
            s.vm_state.clone(),
            if s.memory { "yes".into() } else { "no".into() },
            format!("{} ago", human_duration(Duration::from_secs(age.as_secs()))),
            s.description.clone(),
        ]);
        stack.extend(
            list.iter()
                .rev()
                .filter(|c| c.parent_id == s.id)
                .map(|c| (c, depth + 1)),
        );
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, name: &str, parent: &str, current: bool, at: i64) -> SnapshotView {
        SnapshotView {
            id: id.into(),
            name: name.into(),
            description: String::new(),
            created_at: at,
            vm_state: "running".into(),
            parent_id: parent.into(),
            current,
            memory: true,
        }
    }

    #[test]
    fn the_tree_puts_children_under_parents_and_marks_current() {
        let list = [
            snap("snap-1", "base", "", false, 100),
            snap("snap-2", "a", "snap-1", false, 200),
            snap("snap-3", "b", "snap-1", true, 300),
            snap("snap-4", "a2", "snap-2", false, 400),
        ];
        let out = snapshot_tree(&list, UNIX_EPOCH + Duration::from_secs(460));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("   ID"), "{out}");
        assert!(lines[1].starts_with("   snap-1"), "{out}");
        assert!(lines[2].starts_with("   └ snap-2"), "{out}");
        assert!(lines[3].starts_with("     └ snap-4"), "{out}");
        assert!(lines[4].starts_with("*  └ snap-3"), "{out}");
        assert!(lines[3].contains("1m00s ago"), "{out}");
    }

    #[test]
    fn snapshots_are_named_by_id_or_name() {
        let list = [
            snap("snap-1", "base", "", true, 0),
            snap("snap-2", "snap-1x", "", false, 0),
        ];
        assert_eq!(resolve_snapshot(&list, "snap-1").unwrap(), "snap-1");
        assert_eq!(resolve_snapshot(&list, "snap-1x").unwrap(), "snap-2");
        assert_eq!(resolve_snapshot(&list, "base").unwrap(), "snap-1");
        let e = resolve_snapshot(&list, "nope").unwrap_err();
        assert!(e.contains("base, snap-1x"), "{e}");
        assert!(
            resolve_snapshot(&[], "x")
                .unwrap_err()
                .contains("no snapshots")
        );
    }

    #[test]
    fn the_command_line_parses() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(subcommand)]
            c: SnapshotCommand,
        }
        let t = T::parse_from([
            "t",
            "create",
            "web",
            "before-upgrade",
            "--disk-only",
            "--quiesce",
            "-d",
            "x",
        ]);
        assert!(
            matches!(t.c, SnapshotCommand::Create(a) if a.disk_only && a.quiesce && a.name == "before-upgrade" && a.description == "x")
        );
        let t = T::parse_from(["t", "revert", "web", "snap-2", "--stop-if-running"]);
        assert!(
            matches!(t.c, SnapshotCommand::Revert(a) if a.stop_if_running && a.target.snapshot == "snap-2")
        );
        assert!(matches!(
            T::parse_from(["t", "ls", "web"]).c,
            SnapshotCommand::List(_)
        ));
        assert!(matches!(
            T::parse_from(["t", "rm", "web", "a"]).c,
            SnapshotCommand::Delete(_)
        ));
    }
}
