//! Where a VM's files live: one directory under the state dir, one under the run dir.
//!
//! ```text
//! <state>/vms/<vm_id>/vm.json, snapshots.json, disk-<n>.qcow2|img, cloud-init.iso, OVMF_VARS.fd, serial.log, qemu.log
//! <run>/vms/<vm_id>/qmp.sock, qga.sock, serial.sock, qemu.pid
//! ```

use std::path::{Path, PathBuf};

use limiquantix_vm::model::{DiskFormat, DiskSource, VmDefinition, VmId};

/// The file layout of one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimePaths {
    /// `<state>/vms/<vm_id>`: persistent files.
    pub vm_dir: PathBuf,
    /// `<run>/vms/<vm_id>`: sockets and the pidfile.
    pub run_dir: PathBuf,
}

impl RuntimePaths {
    /// The layout for VM `id` under the given state and run directories.
    pub fn new(state_dir: &Path, run_dir: &Path, id: &VmId) -> Self {
        Self {
            vm_dir: state_dir.join("vms").join(id.as_str()),
            run_dir: run_dir.join("vms").join(id.as_str()),
        }
    }

    /// The persisted definition.
    pub fn vm_json(&self) -> PathBuf {
        self.vm_dir.join("vm.json")
    }

    /// The file of disk number `index` of `def` when the backend creates it (overlay or blank):
    /// in the disk's directory when the definition gives one (a pool), else in the VM
    /// directory; `None` for a disk given by path.
    pub fn created_disk(&self, def: &VmDefinition, index: usize) -> Option<PathBuf> {
        let disk = def.disks.get(index).filter(|d| d.is_created())?;
        Some(
            match (def.disk_dirs.get(&disk.id), def.pool_disk_name(index)) {
                (Some(dir), Some(name)) => dir.join(name),
                _ => self.disk_file(index, disk.format),
            },
        )
    }

    /// The host file of disk number `index` of `def`: the given path, or where the backend
    /// creates it.
    pub fn disk_of(&self, def: &VmDefinition, index: usize) -> Option<PathBuf> {
        match &def.disks.get(index)?.source {
            DiskSource::Path { path } => Some(path.clone()),
            _ => self.created_disk(def, index),
        }
    }

    /// `disk-<index>.<qcow2|img>` in the VM directory: where disk number `index` lives when the
    /// backend creates it.
    pub fn disk_file(&self, index: usize, format: DiskFormat) -> PathBuf {
        self.vm_dir
            .join(format!("disk-{index}.{}", format.extension()))
    }

    /// The snapshot tree and the snapshot operation in progress.
    pub fn snapshots_json(&self) -> PathBuf {
        self.vm_dir.join("snapshots.json")
    }

    /// The NoCloud seed ISO.
    pub fn seed_iso(&self) -> PathBuf {
        self.vm_dir.join("cloud-init.iso")
    }

    /// The per-VM copy of the UEFI variable store.
    pub fn uefi_vars(&self) -> PathBuf {
        self.vm_dir.join("OVMF_VARS.fd")
    }

    /// The serial console log.
    pub fn serial_log(&self) -> PathBuf {
        self.vm_dir.join("serial.log")
    }

    /// QEMU's own stderr log.
    pub fn qemu_log(&self) -> PathBuf {
        self.vm_dir.join("qemu.log")
    }

    /// The QMP socket.
    pub fn qmp_socket(&self) -> PathBuf {
        self.run_dir.join("qmp.sock")
    }

    /// The guest agent socket.
    pub fn qga_socket(&self) -> PathBuf {
        self.run_dir.join("qga.sock")
    }

    /// The serial console socket: QEMU listens on it and serves one client at a time (the
    /// interactive console); everything the guest prints also goes to [`Self::serial_log`].
    pub fn serial_socket(&self) -> PathBuf {
        self.run_dir.join("serial.sock")
    }

    /// QEMU's pidfile.
    pub fn pidfile(&self) -> PathBuf {
        self.run_dir.join("qemu.pid")
    }
}
