//! Changing a CD-ROM's medium, live over QMP on a running VM.

use std::path::PathBuf;

use serde_json::json;
use tracing::Instrument;

use super::core::{QemuBackend, Result, blocking};
use super::types::QemuError;
use crate::persist;
use limiquantix_vm::model::VmId;
use limiquantix_vm::state::VmOp;

impl QemuBackend {
    /// Inserts (`Some(path)`) or ejects (`None`) the medium of CD-ROM `cdrom_id`. On a running
    /// VM the change is made live over QMP; the definition is updated either way.
    pub async fn change_media(
        &self,
        id: &VmId,
        cdrom_id: &str,
        media: Option<PathBuf>,
    ) -> Result<()> {
        let vm = self.vm(id)?;
        let span = tracing::info_span!("change_media", vm_id = %id, cdrom = cdrom_id);
        async {
            let _op = vm.op.lock().await;
            let state = Self::check(&vm, VmOp::ChangeMedia)?;
            let mut def = vm.cell().def.clone();
            let cd = def
                .cdroms
                .iter_mut()
                .find(|c| c.id == cdrom_id)
                .ok_or_else(|| QemuError::NoSuchCdrom {
                    vm_id: vm.id.clone(),
                    cdrom_id: cdrom_id.to_owned(),
                })?;
            cd.path = media.clone();
            def.validate()?;
            let checked = def.clone();
            blocking(move || Ok(limiquantix_storage::check_sources(&checked)?)).await?;
            if state.is_active() {
                match &media {
                    Some(p) => {
                        let file = p.to_str().unwrap_or_default();
                        self.qmp_call(
                            &vm,
                            "blockdev-change-medium",
                            Some(json!({
                                "id": cdrom_id,
                                "filename": file,
                                "format": "raw",
                                "read-only-mode": "read-only",
                            })),
                        )
                        .await?;
                    }
                    None => {
                        let id_arg = json!({ "id": cdrom_id });
                        let mut open = id_arg.clone();
                        open["force"] = true.into();
                        self.qmp_call(&vm, "blockdev-open-tray", Some(open)).await?;
                        self.qmp_call(&vm, "blockdev-remove-medium", Some(id_arg.clone()))
                            .await?;
                        self.qmp_call(&vm, "blockdev-close-tray", Some(id_arg))
                            .await?;
                    }
                }
            }
            let json_path = vm.paths.vm_json();
            let saved = def.clone();
            blocking(move || Ok(persist::save_definition(&json_path, &saved)?)).await?;
            vm.cell().def = def;
            Ok(())
        }
        .instrument(span)
        .await
    }
}
