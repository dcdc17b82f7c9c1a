//! Creating and deleting VM directories: all or nothing.
//!
//! `define` builds the whole VM directory under `<state>/vms/.staging-<id>-<random>/` (disks the
//! backend owns, the seed, `vm.json` last), then renames it to `<state>/vms/<id>/` and syncs the
//! parent: a crash leaves either no VM or a complete one, and staging leftovers are removed at
//! the next open. `delete` removes `vm.json` first (from then on the VM does not exist), then the
//! files the backend made, then the directory if nothing else is in it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::Instrument;

use super::core::{Inner, QemuBackend, Result, blocking, io_err, lock};
use super::types::{DefineExtras, QemuError};
use super::vm::Vm;
use crate::paths::RuntimePaths;
use crate::persist;
use limiquantix_vm::model::{
    CdromRole, DiskSource, ModelError, ValidDefinition, VmDefinition, VmId,
};
use limiquantix_vm::state::{VmOp, VmState};
use limiquantix_vm::{VmEventKind, VmStatus};

/// Prefix of staging directories.
const STAGING_PREFIX: &str = ".staging-";

/// Removes `define` staging directories left by a crash.
pub(super) fn remove_stale_staging(vms_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(vms_dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
            tracing::info!(dir = %e.path().display(), "removing a stale staging directory");
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!(dir = %e.path().display(), error = %err, "cannot remove staging");
            }
        }
    }
}

/// Loads every `<vms_dir>/<id>/vm.json`; unreadable ones are logged and skipped.
pub(super) fn load_all(vms_dir: &Path) -> Vec<VmDefinition> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(vms_dir) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(id) = VmId::parse(&name) else {
            continue;
        };
        let path = e.path().join("vm.json");
        if !path.exists() {
            tracing::warn!(vm_id = %id, "VM directory without vm.json; ignored");
            continue;
        }
        match persist::load_definition(&path) {
            Ok(def) if def.id == id => out.push(def),
            Ok(def) => {
                tracing::warn!(vm_id = %id, found = %def.id, "vm.json names another VM; ignored")
            }
            Err(err) => tracing::error!(vm_id = %id, error = %err, "cannot load vm.json; ignored"),
        }
    }
    out
}

/// A seed given as bytes is stored at the backend's seed path, so the definition's seed CD-ROM
/// must point there (the caller asks [`QemuBackend::seed_path`]).
pub(super) fn check_seed_cdrom(
    def: &VmDefinition,
    paths: &RuntimePaths,
    has_seed: bool,
) -> Result<()> {
    let seed = paths.seed_iso();
    for (i, c) in def.cdroms.iter().enumerate() {
        if has_seed && c.role == CdromRole::Seed && c.path.as_deref() != Some(seed.as_path()) {
            return Err(QemuError::Invalid(ModelError {
                field: format!("cdroms[{i}].path"),
                problem: format!(
                    "the seed is stored at {}; the seed CD-ROM must point there",
                    seed.display()
                ),
            }));
        }
    }
    Ok(())
}

impl QemuBackend {
    /// Defines a VM: validates it, creates its directory with the disks it owns and the seed
    /// in a staging directory, writes `vm.json` last and renames the directory into place. A
    /// failure leaves nothing behind; an identical definition of an existing VM succeeds again.
    pub async fn define(&self, def: ValidDefinition, extras: DefineExtras) -> Result<VmStatus> {
        let span = tracing::info_span!("define", vm_id = %def.id);
        define(self, def, extras).instrument(span).await
    }

    /// Deletes a stopped VM: its `vm.json`, the disks the backend created, the seed, the UEFI
    /// variables, logs and runtime files. Disks given by path and backing images are never
    /// touched.
    pub async fn delete(&self, id: &VmId) -> Result<()> {
        let span = tracing::info_span!("delete", vm_id = %id);
        delete(self, id).instrument(span).await
    }
}

/// Defines a VM: checks the definition and its files, builds its directory in staging, moves
/// it into place and registers the VM (see the module documentation).
async fn define(
    backend: &QemuBackend,
    def: ValidDefinition,
    extras: DefineExtras,
) -> Result<VmStatus> {
    let def = def.into_inner();
    let inner = &backend.inner;
    let paths = inner.paths(&def.id);
    check_seed_cdrom(&def, &paths, extras.seed_iso.is_some())?;
    let _catalog = inner.catalog_lock(&def.id).await;
    if let Ok(existing) = backend.vm(&def.id) {
        let same = existing.cell().def == def;
        return if same {
            tracing::debug!("identical definition already present");
            Ok(existing.status())
        } else {
            Err(QemuError::AlreadyExists {
                vm_id: def.id.clone(),
            })
        };
    }

    check_capacity(inner, &def.id)?;
    // Files the definition refers to must exist and be in their declared formats.
    let checked = def.clone();
    blocking(move || Ok(limiquantix_storage::check_sources(&checked)?)).await?;

    let deadline = limiquantix_vm::deadline::current();
    let _turn = inner.disk_creations.enter(&def.id, deadline).await?;
    let vms_dir = inner.vms_dir();
    let staging = create_staging(&vms_dir, &def.id).await?;
    let staged = RuntimePaths {
        vm_dir: staging.path().to_owned(),
        run_dir: paths.run_dir.clone(),
    };
    let outside = create_disks(&inner.config.qemu_img, &def, &staged).await?;
    let target = paths.vm_dir.clone();
    let saved = def.clone();
    let seed = extras.seed_iso;
    let published = blocking(move || {
        write_seed_and_definition(&staged, seed, &saved)?;
        publish(staging, target, &vms_dir, saved.id)
    })
    .await;
    if let Err(e) = published {
        remove_files(outside).await;
        return Err(e);
    }
    Ok(register(inner, def, paths))
}

/// Refuses a new VM past what the open-file limit serves (the VMs defined and those being
/// defined or deleted now, this one included).
fn check_capacity(inner: &Inner, id: &VmId) -> Result<()> {
    let (nofile, capacity) = inner.nofile;
    let defined = lock(&inner.vms).len();
    let in_progress = lock(&inner.catalog).len().saturating_sub(1);
    if defined + in_progress < capacity {
        return Ok(());
    }
    Err(QemuError::TooManyVms {
        vm_id: id.clone(),
        capacity,
        nofile,
        per_vm: super::admission::FDS_PER_VM,
        reserve: super::admission::FD_RESERVE,
    })
}

/// Creates the staging directory `<vms_dir>/.staging-<id>-<random>/`; it is removed again when
/// dropped, so an error before [`publish`] leaves nothing behind.
pub(super) async fn create_staging(vms_dir: &Path, id: &VmId) -> Result<tempfile::TempDir> {
    let (vms_dir, id) = (vms_dir.to_owned(), id.clone());
    blocking(move || {
        tempfile::Builder::new()
            .prefix(&format!("{STAGING_PREFIX}{id}-"))
            .tempdir_in(&vms_dir)
            .map_err(io_err(&vms_dir))
    })
    .await
}

/// Creates the disks the backend owns (overlays and blank disks): in the staging directory, or
/// in place in their directory (a pool) when the definition gives one. Returns the files made
/// outside the staging directory, which the caller removes if the define fails later; on an
/// error here they are already removed.
async fn create_disks(
    qemu_img: &Path,
    def: &VmDefinition,
    staged: &RuntimePaths,
) -> Result<Vec<PathBuf>> {
    let mut outside = Vec::new();
    for (i, d) in def.disks.iter().enumerate() {
        let Some(file) = staged.created_disk(def, i) else {
            continue;
        };
        let made = match &d.source {
            DiskSource::Path { .. } => Ok(None),
            DiskSource::Overlay {
                backing,
                size_bytes,
            } => limiquantix_storage::create_overlay(qemu_img, backing, &file, *size_bytes)
                .await
                .map(|_| Some(())),
            DiskSource::Blank { size_bytes } => {
                limiquantix_storage::create_blank(qemu_img, &file, d.format, *size_bytes)
                    .await
                    .map(|_| Some(()))
            }
        };
        match made {
            Ok(Some(())) if !file.starts_with(&staged.vm_dir) => outside.push(file),
            Ok(_) => {}
            Err(e) => {
                remove_files(outside).await;
                return Err(e.into());
            }
        }
    }
    Ok(outside)
}

/// Removes files a failed define made outside its staging directory.
async fn remove_files(files: Vec<PathBuf>) {
    let _ = blocking(move || {
        for f in files {
            tracing::info!(file = %f.display(), "removing a disk of a failed define");
            let _ = std::fs::remove_file(f);
        }
        Ok(())
    })
    .await;
}

/// Writes the seed ISO (when given) and then `vm.json` into the staging directory (blocking).
pub(super) fn write_seed_and_definition(
    staged: &RuntimePaths,
    seed: Option<Vec<u8>>,
    def: &VmDefinition,
) -> Result<()> {
    if let Some(bytes) = seed {
        persist::write_atomic(&staged.seed_iso(), &bytes, 0o600)?;
    }
    persist::save_definition(&staged.vm_json(), def)?;
    Ok(())
}

/// Renames the staging directory to `target` and syncs `vms_dir` (blocking); when the rename
/// fails the staging directory is removed, and an existing `target` is
/// [`QemuError::AlreadyExists`].
pub(super) fn publish(
    staging: tempfile::TempDir,
    target: PathBuf,
    vms_dir: &Path,
    id: VmId,
) -> Result<()> {
    let staging_path = staging.keep();
    if let Err(e) = std::fs::rename(&staging_path, &target) {
        let _ = std::fs::remove_dir_all(&staging_path);
        if matches!(
            e.kind(),
            std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::DirectoryNotEmpty
        ) {
            return Err(QemuError::AlreadyExists { vm_id: id });
        }
        return Err(QemuError::Io {
            path: target,
            source: e,
        });
    }
    Ok(persist::sync_dir(vms_dir)?)
}

/// Adds the newly defined VM to the catalogue, announces it and returns its status.
fn register(inner: &Inner, def: VmDefinition, paths: RuntimePaths) -> VmStatus {
    let vm = Arc::new(Vm::new(def, paths, VmState::Stopped));
    let (status, name) = (vm.status(), vm.cell().def.name.clone());
    let id = vm.id.clone();
    lock(&inner.vms).insert(id.clone(), vm);
    inner.emit(&id, VmEventKind::Defined);
    tracing::info!(name = %name, "VM defined");
    status
}

/// Deletes a VM: removes `vm.json` first, then the files the backend made, then the directories
/// if nothing else is in them (see the module documentation).
async fn delete(backend: &QemuBackend, id: &VmId) -> Result<()> {
    let inner = &backend.inner;
    let _catalog = inner.catalog_lock(id).await;
    let vm = backend.vm(id)?;
    let _op = vm.op.lock().await;
    QemuBackend::check(&vm, VmOp::Delete)?;
    let def = vm.cell().def.clone();
    let paths = vm.paths.clone();
    let runtime = vm.runtime_file();
    blocking(move || {
        let vm_json = paths.vm_json();
        remove_if_present(&vm_json)?;
        persist::sync_dir(&paths.vm_dir)?;
        let mut owned: Vec<PathBuf> = def
            .disks
            .iter()
            .enumerate()
            .filter_map(|(i, _)| paths.created_disk(&def, i))
            .collect();
        owned.extend([
            paths.seed_iso(),
            paths.uefi_vars(),
            paths.serial_log(),
            paths.qemu_log(),
            runtime,
            paths.qmp_socket(),
            paths.qga_socket(),
            paths.serial_socket(),
            paths.pidfile(),
        ]);
        for f in &owned {
            remove_if_present(f)?;
        }
        for dir in [&paths.vm_dir, &paths.run_dir] {
            match std::fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(
                    dir = %dir.display(), error = %e,
                    "VM directory kept: it holds files the backend did not create"
                ),
            }
        }
        Ok(())
    })
    .await?;
    lock(&inner.vms).remove(id);
    inner.emit(id, VmEventKind::Deleted);
    tracing::info!("VM deleted");
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(QemuError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}
