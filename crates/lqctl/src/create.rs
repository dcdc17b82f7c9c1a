//! `lqctl vm create`: builds a `CreateVM` request from flags, with the cloud-init documents built
//! client-side when the flags call for them; then creates the VM, and starts it and waits for it
//! when asked.
//!
//! The flags are in [`args`]; [`request`] puts the request together from the SSH keys and other
//! files the flags name ([`inputs`]), the NICs ([`nics`]), what the VM boots from ([`source`]) and
//! how it is provisioned ([`provision`]). This module runs the command.

mod args;
mod inputs;
mod nics;
mod provision;
mod request;
mod source;

use anyhow::{anyhow, bail};
use limiquantix_proto::v1::{CreateVmOnNodeRequest, VmIdRequest};

pub use self::args::CreateArgs;
pub(crate) use self::inputs::expand_home;
pub(crate) use self::source::{ImageChoice, choose_image};
use crate::ctx::Ctx;
use crate::daemon::CallExt as _;
use crate::lookup::{list_vms, status};
use crate::output::{Format, print_structured};
use crate::summary::print_summary;
use crate::wait::{self, WaitFor};

/// Runs `vm create`.
pub async fn run(ctx: &Ctx, a: CreateArgs) -> anyhow::Result<()> {
    check_name_free(ctx, &a.name).await?;
    let (request, from_iso) = request::build(ctx, &a).await?;
    let vm_id = define(ctx, &a, request).await?;
    if !(a.start || a.wait) {
        match ctx.format {
            Format::Table => println!("{}  created  {vm_id}", a.name),
            f => print_structured(
                &serde_json::json!({ "id": vm_id, "name": a.name, "result": "created" }),
                f,
            )?,
        }
        return Ok(());
    }
    ctx.daemon
        .node()
        .start_vm(VmIdRequest {
            vm_id: vm_id.clone(),
        })
        .await
        .or_fail(&ctx.daemon)
        .map_err(|e| anyhow!("VM {} was created ({vm_id}) but did not start: {e}", a.name))?;
    let vm = status(ctx, &vm_id).await?;
    if !a.wait {
        match ctx.format {
            Format::Table => println!("{}  created and started  {vm_id}", a.name),
            _ => print_summary(ctx, &vm, None),
        }
        return Ok(());
    }
    let until = if from_iso {
        WaitFor::Running
    } else {
        WaitFor::Ready
    };
    let r = wait::wait(ctx, &vm, until, a.timeout).await?;
    print_summary(ctx, &r.vm, Some((&r.label, r.took)));
    Ok(())
}

/// Fails when a VM already has this name: VMs are named on the command line by name, and two
/// with the same name would make it ambiguous.
async fn check_name_free(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    if let Some(other) = list_vms(ctx).await?.iter().find(|v| v.name == name) {
        bail!(
            "a VM named {} already exists ({}): choose another name, or delete it first (lqctl vm delete {})",
            name,
            other.vm_id,
            name
        );
    }
    Ok(())
}

/// Defines the VM on the daemon and returns its id.
async fn define(
    ctx: &Ctx,
    a: &CreateArgs,
    request: CreateVmOnNodeRequest,
) -> anyhow::Result<String> {
    let created = ctx
        .daemon
        .node()
        .create_vm(request)
        .await
        .or_fail(&ctx.daemon)
        .map_err(|e| {
            // A path outside the daemon's image directories: importing it is the way in.
            if a.image.contains('/') && e.to_string().contains("outside the allowed directories") {
                anyhow!(
                    "{e}; import it into the library first: lqctl image import {}",
                    a.image
                )
            } else {
                e
            }
        })?;
    Ok(created.vm_id)
}
