//! The `CreateVM` request of `vm create`, put together from the flags.

use std::collections::HashMap;

use anyhow::{anyhow, bail};
use limiquantix_proto::v1::{CreateVmOnNodeRequest, NicSpec, PortForward, VmSpec};

use super::args::CreateArgs;
use super::inputs::ssh_keys;
use super::nics::{is_user_mode, nics, ssh_port};
use super::provision::provisioning;
use super::source::{ImageChoice, choose_image, storage};
use crate::ctx::Ctx;
use crate::summary::SSH_LABEL;

/// Builds the request from the flags (no daemon calls besides the image lookup); also says
/// whether the VM installs from an ISO (then no cloud-init runs and `--wait` waits for running).
pub(super) async fn build(
    ctx: &Ctx,
    a: &CreateArgs,
) -> anyhow::Result<(CreateVmOnNodeRequest, bool)> {
    let keys = ssh_keys(&a.ssh_keys)?;
    let vm_id = uuid::Uuid::new_v4().to_string();
    let mut nics = nics(&a.nics, a.ip.is_some())?;
    let mut labels = labels(&a.labels)?;
    let first_user_mode = is_user_mode(&nics[0]);
    let local =
        !ctx.daemon.address().starts_with("https://") && !ctx.daemon.address().starts_with("tcp:");
    if let Some(port) = ssh_port(
        a.ssh_port.as_deref(),
        !keys.is_empty(),
        first_user_mode,
        local,
    )? {
        if !first_user_mode {
            bail!("--ssh-port needs the first NIC to be user-mode (--nic user)");
        }
        forward_ssh(&mut nics[0], &mut labels, a.user.as_deref(), port);
    }
    let image = choose_image(ctx, &a.image).await?;
    let from_iso = matches!(image, ImageChoice::Iso(_));
    let (disks, cdroms) = storage(image, a.disk_size);
    let first_mac = nics
        .first()
        .map(|n| n.mac_address.clone())
        .filter(|m| !m.is_empty());
    let provisioning = provisioning(a, &keys, first_mac.as_deref())?;
    let spec = VmSpec {
        cpu_cores: a.cpus,
        cpu_sockets: 1,
        cpu_threads_per_core: 1,
        memory_mib: a.memory,
        firmware: a.firmware.wire() as i32,
        disks,
        cdroms,
        nics,
        cloud_init: provisioning.cloud_init,
        default_seed: provisioning.default_seed,
        ..Default::default()
    };
    let request = CreateVmOnNodeRequest {
        vm_id,
        name: a.name.clone(),
        spec: Some(spec),
        labels: labels.into_iter().collect(),
    };
    Ok((request, from_iso))
}

/// The labels of `--label KEY=VALUE`.
fn labels(values: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let mut labels = HashMap::new();
    for l in values {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| anyhow!("--label {l:?}: write KEY=VALUE"))?;
        labels.insert(k.to_owned(), v.to_owned());
    }
    Ok(labels)
}

/// Forwards `port` on 127.0.0.1 to the guest's SSH port on `nic` (user-mode), and records the
/// login (`USER@127.0.0.1:PORT`, `user` or the seed's default user) in the [`SSH_LABEL`] label.
fn forward_ssh(
    nic: &mut NicSpec,
    labels: &mut HashMap<String, String>,
    user: Option<&str>,
    port: u16,
) {
    nic.port_forwards.push(PortForward {
        protocol: "tcp".into(),
        host_address: "127.0.0.1".into(),
        host_port: u32::from(port),
        guest_port: 22,
    });
    let user = user.unwrap_or(limiquantix_cloudinit::userdata::DEFAULT_USER);
    labels.insert(SSH_LABEL.into(), format!("{user}@127.0.0.1:{port}"));
}
