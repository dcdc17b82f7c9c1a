//! Looking VMs up on the daemon: the node's VMs, the VM a name designates, a VM's status.

use limiquantix_proto::v1::{VmIdRequest, VmStatusResponse};

use crate::ctx::Ctx;
use crate::daemon::CallExt as _;
use crate::resolve::resolve;

/// Every VM of the node.
pub async fn list_vms(ctx: &Ctx) -> anyhow::Result<Vec<VmStatusResponse>> {
    Ok(ctx
        .daemon
        .node()
        .list_v_ms(())
        .await
        .or_fail(&ctx.daemon)?
        .vms)
}

/// The VM a name, id or id prefix designates.
pub async fn find(ctx: &Ctx, query: &str) -> anyhow::Result<VmStatusResponse> {
    let vms = list_vms(ctx).await?;
    Ok(resolve(&vms, query).map_err(anyhow::Error::msg)?.clone())
}

/// The current status of a VM by id.
pub async fn status(ctx: &Ctx, vm_id: &str) -> anyhow::Result<VmStatusResponse> {
    ctx.daemon
        .node()
        .get_vm_status(VmIdRequest {
            vm_id: vm_id.to_owned(),
        })
        .await
        .or_fail(&ctx.daemon)
}
