//! The line a VM command ends with once the VM runs (`vm create --start/--wait`, `vm start
//! --wait`, `vm wait`): name, state, how long it took, IPs and the SSH command.

use std::time::{Duration, SystemTime};

use limiquantix_proto::v1::VmStatusResponse;

use crate::ctx::Ctx;
use crate::output::{Format, paint_state, print_structured};
use crate::view::{VmView, table_ips};

/// Label recording the SSH forward lqctl set up, as `USER@HOST:PORT`.
pub const SSH_LABEL: &str = "lq.ssh";

/// Prints the line a finished wait ends with:
/// `web1  running  ready in 31.4s  ssh -p 40022 admin@127.0.0.1`; json/yaml print the VM view.
pub fn print_summary(ctx: &Ctx, vm: &VmStatusResponse, reached: Option<(&str, Duration)>) {
    let view = VmView::new(vm, SystemTime::now());
    if ctx.format != Format::Table {
        let _ = print_structured(&view, ctx.format);
        return;
    }
    let mut parts = vec![view.name.clone(), paint_state(&view.state, ctx.colour)];
    match reached {
        Some((label, took)) if label != view.state => {
            parts.push(format!(
                "{} in {:.1}s",
                paint_state(label, ctx.colour),
                took.as_secs_f64()
            ));
        }
        Some((_, took)) => parts.push(format!("after {:.1}s", took.as_secs_f64())),
        None => {}
    }
    if !view.ips.is_empty() {
        parts.push(table_ips(&view.ips));
    }
    if let Some(hint) = ssh_hint(vm) {
        parts.push(hint);
    }
    println!("{}", parts.join("  "));
}

/// `ssh -p PORT USER@127.0.0.1` when the VM was created with an SSH port forward (lqctl records
/// it in the [`SSH_LABEL`] label as `USER@HOST:PORT`).
fn ssh_hint(vm: &VmStatusResponse) -> Option<String> {
    let v = vm.labels.get(SSH_LABEL)?;
    let (user_host, port) = v.rsplit_once(':')?;
    Some(format!("ssh -p {port} {user_host}"))
}
