//! AttachDisk, DetachDisk, AttachNIC, DetachNIC: the request taken apart with CreateVM's disk
//! and NIC translation (paths confined, volumes resolved), the device ids resolved (the API
//! speaks a caller's ids, `disk-<unixnano>` from the LimiQuantix control plane), then the
//! backend hot-plugs (VM running or paused) or edits the definition (stopped) and publishes the
//! attached/detached events.

use super::core::NodeService;
use crate::error::ApiError;
use crate::translate::{Context, attach_disk, attach_nic, parse_vm_id};
use limiquantix_proto::v1 as pb;
use limiquantix_vm::VmBackend;
use limiquantix_vm::model::VmId;

impl<B: VmBackend> NodeService<B> {
    /// AttachDisk.
    pub(super) async fn disk_attach(&self, req: pb::AttachDiskRequest) -> Result<(), ApiError> {
        let id = parse_vm_id("vm_id", &req.vm_id)?;
        let wire = req
            .disk
            .ok_or_else(|| ApiError::invalid("disk", "required"))?;
        let def = self.inner.backend.get(&id).await?.definition;
        let inner = self.inner.clone();
        let (disk, placement) = tokio::task::spawn_blocking(move || {
            let (confinement, pools) = (inner.confinement(), inner.pool_dirs());
            let ctx = Context {
                confinement: &confinement,
                pools: &pools,
                console_address: None,
                networks: &inner.config.networks,
                default_network: inner.config.default_network.as_deref(),
            };
            attach_disk(&wire, &def, &ctx)
        })
        .await??;
        // A new disk in a pool is held to CreateVM's room rule, before anything is written.
        if let Some(dir) = &placement.dir {
            self.check_disk_room(&disk, dir).await?;
        }
        tracing::info!(vm_id = %id, disk = %disk.id, bus = ?disk.bus, "attaching a disk");
        self.inner.backend.attach_disk(&id, disk, placement).await?;
        Ok(())
    }

    /// DetachDisk.
    pub(super) async fn disk_detach(&self, req: pb::DetachDiskRequest) -> Result<(), ApiError> {
        let (id, device) = self.device(&req.vm_id, "disk_id", &req.disk_id).await?;
        tracing::info!(vm_id = %id, disk = %device, delete_file = req.delete_file, "detaching a disk");
        let backend = &self.inner.backend;
        backend.detach_disk(&id, &device, req.delete_file).await?;
        Ok(())
    }

    /// AttachNIC.
    pub(super) async fn nic_attach(&self, req: pb::AttachNicRequest) -> Result<(), ApiError> {
        let id = parse_vm_id("vm_id", &req.vm_id)?;
        let wire = req
            .nic
            .ok_or_else(|| ApiError::invalid("nic", "required"))?;
        let def = self.inner.backend.get(&id).await?.definition;
        let cfg = &self.inner.config;
        let (confinement, pools) = (self.inner.confinement(), self.inner.pool_dirs());
        let ctx = Context {
            confinement: &confinement,
            pools: &pools,
            console_address: None,
            networks: &cfg.networks,
            default_network: cfg.default_network.as_deref(),
        };
        let (nic, api_id) = attach_nic(&wire, &def, &ctx)?;
        tracing::info!(vm_id = %id, nic = %nic.id, "attaching a NIC");
        self.inner.backend.attach_nic(&id, nic, api_id).await?;
        Ok(())
    }

    /// DetachNIC.
    pub(super) async fn nic_detach(&self, req: pb::DetachNicRequest) -> Result<(), ApiError> {
        let (id, device) = self.device(&req.vm_id, "nic_id", &req.nic_id).await?;
        tracing::info!(vm_id = %id, nic = %device, "detaching a NIC");
        self.inner.backend.detach_nic(&id, &device).await?;
        Ok(())
    }

    /// The VM and the device id of the device a request names by `field` (its device id or the
    /// caller's id for it).
    async fn device(
        &self,
        vm_id: &str,
        field: &str,
        name: &str,
    ) -> Result<(VmId, String), ApiError> {
        let id = parse_vm_id("vm_id", vm_id)?;
        if name.is_empty() {
            return Err(ApiError::invalid(field, "required: the device's id"));
        }
        let def = self.inner.backend.get(&id).await?.definition;
        let device = def.device_id_of(name).to_string();
        Ok((id, device))
    }
}
