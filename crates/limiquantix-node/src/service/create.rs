//! CreateVM: validate everything, decide the seed, define all-or-nothing, idempotently.
//!
//! 1. `vm_id` is parsed (or generated when empty); if the VM exists, the request's digest is
//!    compared with the one stored in its definition: equal → success (`created = false`),
//!    different → ALREADY_EXISTS.
//! 2. The whole request is checked and translated ([`crate::translate`]): names, bounds, enum
//!    values, devices, and every host path confined to the pools and the images directory.
//! 3. The seed is decided and built in memory ([`crate::provision`]).
//! 4. The backend defines the VM in one step: overlays, blank disks, the seed file (mode 0600)
//!    and `vm.json` appear together or not at all. The VM is not started.
//!
//! Injection points for crash tests ([`crate::fault`]): `createvm:after-validate`,
//! `createvm:after-seed`, `createvm:after-define`.

use super::NodeService;
use crate::backend::{BackendError, VmBackend, VmEventKind};
use crate::fault;
use crate::provision::{self, SeedKind};
use crate::status::ApiError;
use crate::translate::{Context, model_error, parse_vm_id, prepare_definition};
use limiquantix_hypervisor::model::VmId;
use limiquantix_proto::v1 as pb;
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// The digest of a CreateVM request for VM `id`: SHA-256 of its protobuf encoding with `vm_id`
/// set (maps are ordered, so equal requests encode equally). Stored in the definition, it makes
/// CreateVM idempotent.
pub fn request_digest(req: &pb::CreateVmOnNodeRequest, id: &VmId) -> String {
    let mut canonical = req.clone();
    canonical.vm_id = id.as_str().to_string();
    let hash = Sha256::digest(canonical.encode_to_vec());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl<B: VmBackend> NodeService<B> {
    /// The answer for a VM that already exists: the same request again succeeds, another one
    /// is ALREADY_EXISTS. `None` when the VM does not exist.
    async fn existing(
        &self,
        id: &VmId,
        digest: &str,
    ) -> Result<Option<pb::CreateVmOnNodeResponse>, ApiError> {
        match self.inner.backend.get(id).await {
            Ok(entry) if entry.definition.spec_digest.as_deref() == Some(digest) => {
                tracing::info!(vm_id = %id, "CreateVM repeated with the same spec: nothing to do");
                Ok(Some(pb::CreateVmOnNodeResponse {
                    vm_id: id.as_str().to_string(),
                    created: false,
                    message: format!("VM {} already exists with this spec", entry.definition.name),
                }))
            }
            Ok(_) => Err(ApiError::AlreadyExists {
                vm_id: id.as_str().to_string(),
            }),
            Err(BackendError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn create(
        &self,
        req: pb::CreateVmOnNodeRequest,
    ) -> Result<pb::CreateVmOnNodeResponse, ApiError> {
        let id = if req.vm_id.is_empty() {
            VmId::generate()
        } else {
            parse_vm_id("vm_id", &req.vm_id)?
        };
        let digest = request_digest(&req, &id);
        if let Some(answer) = self.existing(&id, &digest).await? {
            return Ok(answer);
        }

        let t0 = std::time::Instant::now();
        let inner = self.inner.clone();
        let seed_path = inner.backend.paths(&id).seed_iso();
        let name = req.name.clone();
        let vm = id.clone();
        let (definition, seed) = tokio::task::spawn_blocking(move || {
            let ctx = Context {
                confinement: &inner.confinement,
                pools: &inner.config.pools,
            };
            let prepared = prepare_definition(&req, vm.clone(), &ctx)?;
            fault::point("createvm:after-validate");
            let spec = req
                .spec
                .as_ref()
                .ok_or_else(|| ApiError::invalid("spec", "required"))?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let seed = provision::plan(spec, &vm, &req.name, prepared.has_backing_file, now)?;
            let mut definition = prepared.definition;
            if seed.is_some() {
                definition.cdroms.push(provision::seed_cdrom(seed_path));
                definition.validate().map_err(model_error)?;
            }
            definition.spec_digest = Some(digest);
            fault::point("createvm:after-seed");
            Ok::<_, ApiError>((definition, seed))
        })
        .await??;

        let prepared_in = t0.elapsed();
        let kind = seed.as_ref().map(|s| s.kind);
        let warnings = seed
            .as_ref()
            .map(|s| s.warnings.clone())
            .unwrap_or_default();
        let digest = definition.spec_digest.clone().unwrap_or_default();
        match self
            .inner
            .backend
            .define(definition, seed.map(|s| s.iso))
            .await
        {
            Ok(_) => {}
            // Lost a race with an identical (or a different) concurrent CreateVM.
            Err(BackendError::AlreadyExists { .. }) => {
                if let Some(answer) = self.existing(&id, &digest).await? {
                    return Ok(answer);
                }
                return Err(ApiError::AlreadyExists {
                    vm_id: id.as_str().to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        fault::point("createvm:after-define");
        tracing::debug!(
            vm_id = %id,
            prepare_us = prepared_in.as_micros() as u64,
            define_us = (t0.elapsed() - prepared_in).as_micros() as u64,
            "CreateVM timings (validation and seed; backend define)"
        );

        let seed_text = match kind {
            Some(SeedKind::Custom) => "the given cloud-init documents",
            Some(SeedKind::Default) => "the default cloud-init seed",
            None => "no cloud-init seed",
        };
        tracing::info!(vm_id = %id, name = %name, seed = seed_text, warnings = warnings.len(), "VM defined");
        self.emit(
            &id,
            VmEventKind::Created,
            format!("VM {name} defined with {seed_text}"),
        );
        let mut message = format!("VM {name} defined with {seed_text}; not started");
        if !warnings.is_empty() {
            message.push_str("; warnings: ");
            message.push_str(&warnings.join("; "));
        }
        Ok(pb::CreateVmOnNodeResponse {
            vm_id: id.as_str().to_string(),
            created: true,
            message,
        })
    }
}
