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

use super::core::NodeService;
use super::volume::check_room;
use crate::error::ApiError;
use crate::fault;
use crate::provision::{self, SeedKind};
use crate::translate::{Context, model_error, parse_vm_id, prepare_definition};
use limiquantix_proto::v1 as pb;
use limiquantix_vm::model::{DiskSource, DiskSpec, ValidDefinition, VmDefinition, VmId};
use limiquantix_vm::{BackendError, VmBackend, VmEventKind};
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use std::path::Path;
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
        let name = req.name.clone();
        let planned = self.plan(req, id.clone(), digest.clone()).await?;
        self.check_pool_room(&planned.definition).await?;
        let prepared_in = t0.elapsed();
        if let Some(answer) = self
            .define(&id, &digest, planned.definition, planned.seed_iso)
            .await?
        {
            return Ok(answer);
        }
        fault::point("createvm:after-define");
        tracing::debug!(
            vm_id = %id,
            prepare_us = prepared_in.as_micros() as u64,
            define_us = (t0.elapsed() - prepared_in).as_micros() as u64,
            "CreateVM timings (validation and seed; backend define)"
        );
        Ok(self.created(&id, &name, planned.kind, &planned.warnings))
    }

    /// Refuses, before anything is written, disks to be created in a pool that would not fit
    /// in its free space or its cap (the same rule as CreateVolume).
    async fn check_pool_room(&self, def: &VmDefinition) -> Result<(), ApiError> {
        for disk in &def.disks {
            if let Some(dir) = def.disk_dirs.get(&disk.id) {
                self.check_disk_room(disk, dir).await?;
            }
        }
        Ok(())
    }

    /// Refuses, before anything is written, `disk` when it is to be created in pool directory
    /// `dir` and would not fit in the pool's free space or its cap (CreateVM and AttachDisk).
    pub(super) async fn check_disk_room(
        &self,
        disk: &DiskSpec,
        dir: &Path,
    ) -> Result<(), ApiError> {
        let size = match disk.source {
            DiskSource::Overlay { size_bytes, .. } | DiskSource::Blank { size_bytes } => size_bytes,
            DiskSource::Path { .. } => return Ok(()),
        };
        let pools = self.inner.pools.all();
        if let Some((pool_id, pool)) = pools.iter().find(|(_, p)| p.dir == dir) {
            check_room(pool_id, pool, size, 0).await?;
        }
        Ok(())
    }

    /// Translates and checks the request, decides and builds the seed, and validates the whole
    /// definition once (blocking work, off the runtime).
    async fn plan(
        &self,
        req: pb::CreateVmOnNodeRequest,
        id: VmId,
        digest: String,
    ) -> Result<Planned, ApiError> {
        let inner = self.inner.clone();
        let seed_path = inner.backend.seed_path(&id);
        tokio::task::spawn_blocking(move || {
            let (confinement, pools) = (inner.confinement(), inner.pool_dirs());
            let ctx = Context {
                confinement: &confinement,
                pools: &pools,
                console_address: inner.management_address(),
                networks: &inner.config.networks,
                default_network: inner.config.default_network.as_deref(),
            };
            let prepared = prepare_definition(&req, id.clone(), &ctx)?;
            let spec = req
                .spec
                .as_ref()
                .ok_or_else(|| ApiError::invalid("spec", "required"))?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let seed = provision::plan(spec, &id, &req.name, prepared.has_backing_file, now)?;
            let mut definition = prepared.definition;
            if seed.is_some() {
                definition.cdroms.push(provision::seed_cdrom(seed_path));
            }
            definition.spec_digest = Some(digest);
            let definition = definition.into_valid().map_err(model_error)?;
            fault::point("createvm:after-validate");
            fault::point("createvm:after-seed");
            Ok(Planned {
                definition,
                kind: seed.as_ref().map(|s| s.kind),
                warnings: seed
                    .as_ref()
                    .map(|s| s.warnings.clone())
                    .unwrap_or_default(),
                seed_iso: seed.map(|s| s.iso),
            })
        })
        .await?
    }

    /// Defines the VM in the backend. `Some(answer)` when a concurrent CreateVM of the same id
    /// won the race with the same spec.
    async fn define(
        &self,
        id: &VmId,
        digest: &str,
        definition: ValidDefinition,
        seed_iso: Option<Vec<u8>>,
    ) -> Result<Option<pb::CreateVmOnNodeResponse>, ApiError> {
        match self.inner.backend.define(definition, seed_iso).await {
            Ok(_) => Ok(None),
            // Lost a race with an identical (or a different) concurrent CreateVM.
            Err(BackendError::AlreadyExists { .. }) => match self.existing(id, digest).await? {
                Some(answer) => Ok(Some(answer)),
                None => Err(ApiError::AlreadyExists {
                    vm_id: id.as_str().to_string(),
                }),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Logs and publishes the new VM, and the answer to the caller.
    fn created(
        &self,
        id: &VmId,
        name: &str,
        kind: Option<SeedKind>,
        warnings: &[String],
    ) -> pb::CreateVmOnNodeResponse {
        let seed_text = match kind {
            Some(SeedKind::Custom) => "the given cloud-init documents",
            Some(SeedKind::Default) => "the default cloud-init seed",
            None => "no cloud-init seed",
        };
        tracing::info!(vm_id = %id, name = %name, seed = seed_text, warnings = warnings.len(), "VM defined");
        self.emit(
            id,
            VmEventKind::Defined,
            format!("VM {name} defined with {seed_text}"),
        );
        let mut message = format!("VM {name} defined with {seed_text}; not started");
        if !warnings.is_empty() {
            message.push_str("; warnings: ");
            message.push_str(&warnings.join("; "));
        }
        pb::CreateVmOnNodeResponse {
            vm_id: id.as_str().to_string(),
            created: true,
            message,
        }
    }
}

/// A CreateVM request turned into what the backend defines.
struct Planned {
    /// The whole definition, seed CD-ROM included, validated once.
    definition: ValidDefinition,
    /// The seed ISO to store, when the VM has one.
    seed_iso: Option<Vec<u8>>,
    /// Which seed it is.
    kind: Option<SeedKind>,
    /// The seed engine's warnings (deprecated keys, ...).
    warnings: Vec<String>,
}
