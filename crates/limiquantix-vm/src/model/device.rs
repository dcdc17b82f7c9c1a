//! Device specifications: disks, CD-ROMs and NICs.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::id::MacAddr;

/// A disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    /// Device id, unique among disks, CD-ROMs and NICs (see `check_device_id`).
    pub id: String,
    /// Where the disk's content comes from.
    pub source: DiskSource,
    /// Bus the guest sees the disk on.
    #[serde(default)]
    pub bus: DiskBus,
    /// Image format of the disk file. For `overlay` it must be `qcow2`; for `path` it must match
    /// the file (checked at define time with `storage::detect_format`).
    #[serde(default)]
    pub format: DiskFormat,
    /// Attach read-only.
    #[serde(default)]
    pub readonly: bool,
    /// Explicit boot position (1 = first). When no device has one, the order is automatic:
    /// disks with content first, then blank disks, then bootable CD-ROMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_index: Option<u16>,
    /// I/O limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<IoLimits>,
}

impl DiskSpec {
    /// Whether the backend creates (and later deletes) this disk's file in the VM directory.
    pub fn is_created(&self) -> bool {
        !matches!(self.source, DiskSource::Path { .. })
    }

    /// Whether the disk can hold a bootable system: an existing file or an overlay on one.
    /// A blank disk has nothing to boot.
    pub fn has_content(&self) -> bool {
        !matches!(self.source, DiskSource::Blank { .. })
    }
}

/// Where a disk's content comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DiskSource {
    /// An existing image file, used in place and never deleted by the backend.
    Path {
        /// Absolute path of the image.
        path: PathBuf,
    },
    /// A qcow2 overlay the backend creates in the VM directory on top of `backing`
    /// (a cloud image, say), which is never written to.
    Overlay {
        /// Absolute path of the backing image (qcow2 or raw; format detected from its header).
        backing: PathBuf,
        /// Virtual size of the overlay; at least the backing image's virtual size.
        size_bytes: u64,
    },
    /// An empty disk the backend creates in the VM directory.
    Blank {
        /// Virtual size.
        size_bytes: u64,
    },
}

/// Disk bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskBus {
    /// virtio-blk (the default).
    #[default]
    Virtio,
    /// virtio-scsi (`scsi-hd` on a `virtio-scsi-pci` controller).
    Scsi,
    /// SATA on an AHCI controller.
    Sata,
    /// IDE; only on the `pc` machine type.
    Ide,
}

/// Disk image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskFormat {
    /// qcow2 (the default).
    #[default]
    Qcow2,
    /// Raw.
    Raw,
}

impl DiskFormat {
    /// QEMU's driver name (`qcow2`, `raw`), also what `qemu-img -f`/`-F` takes.
    pub fn qemu_name(self) -> &'static str {
        match self {
            Self::Qcow2 => "qcow2",
            Self::Raw => "raw",
        }
    }

    /// File extension for disks the backend creates.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Qcow2 => "qcow2",
            Self::Raw => "img",
        }
    }
}

/// Disk I/O limits (QEMU throttle group). `*_total` excludes the matching `_read`/`_write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoLimits {
    /// Total I/O operations per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops_total: Option<u64>,
    /// Read operations per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops_read: Option<u64>,
    /// Write operations per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops_write: Option<u64>,
    /// Total bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bps_total: Option<u64>,
    /// Read bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bps_read: Option<u64>,
    /// Write bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bps_write: Option<u64>,
}

impl IoLimits {
    /// The limits as `(QEMU throttle key, value)` pairs, set ones only.
    pub fn entries(&self) -> Vec<(&'static str, u64)> {
        [
            ("iops-total", self.iops_total),
            ("iops-read", self.iops_read),
            ("iops-write", self.iops_write),
            ("bps-total", self.bps_total),
            ("bps-read", self.bps_read),
            ("bps-write", self.bps_write),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// A CD-ROM drive (always on SATA/AHCI, read-only, raw).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdromSpec {
    /// Device id, unique among disks, CD-ROMs and NICs.
    pub id: String,
    /// ISO image; `None` is an empty drive (media can be inserted later).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Offer the CD-ROM in boot order (after the disks). Must be false for a seed.
    #[serde(default)]
    pub bootable: bool,
    /// What the CD-ROM is for.
    #[serde(default)]
    pub role: CdromRole,
    /// Explicit boot position (see [`DiskSpec::boot_index`]); not allowed for a seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_index: Option<u16>,
}

/// What a CD-ROM is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CdromRole {
    /// Installation or data media.
    #[default]
    Media,
    /// The cloud-init NoCloud seed: never bootable, never in boot order.
    Seed,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicSpec {
    /// Device id, unique among disks, CD-ROMs and NICs.
    pub id: String,
    /// MAC address; derived from the VM id and the NIC's index when absent
    /// (see `VmDefinition::nic_mac`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Emulated NIC model.
    #[serde(default)]
    pub model: NicModel,
    /// Host side of the NIC.
    #[serde(default)]
    pub network: NicNetwork,
}

/// Emulated NIC model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NicModel {
    /// virtio-net (the default).
    #[default]
    Virtio,
    /// Intel e1000.
    E1000,
    /// Realtek RTL8139.
    Rtl8139,
}

impl NicModel {
    /// QEMU device driver name.
    pub fn qemu_driver(self) -> &'static str {
        match self {
            Self::Virtio => "virtio-net-pci",
            Self::E1000 => "e1000",
            Self::Rtl8139 => "rtl8139",
        }
    }
}

/// Host side of a NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NicNetwork {
    /// QEMU user-mode networking (slirp) with optional host port forwards.
    User {
        /// Host-to-guest port forwards.
        #[serde(default)]
        port_forwards: Vec<PortForward>,
    },
    /// An existing tap device.
    Tap {
        /// Tap interface name (1–15 characters, `[A-Za-z0-9_.-]`).
        ifname: String,
    },
    /// A host bridge, through `qemu-bridge-helper`.
    Bridge {
        /// Bridge name (1–15 characters, `[A-Za-z0-9_.-]`).
        name: String,
    },
}

impl Default for NicNetwork {
    fn default() -> Self {
        Self::User {
            port_forwards: Vec::new(),
        }
    }
}

/// A host port forwarded to a guest port (user-mode networking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortForward {
    /// Protocol.
    #[serde(default)]
    pub protocol: Protocol,
    /// Host address to listen on; `127.0.0.1` unless set.
    #[serde(default = "localhost")]
    pub host_addr: Ipv4Addr,
    /// Host port (1–65535).
    pub host_port: u16,
    /// Guest port (1–65535).
    pub guest_port: u16,
}

fn localhost() -> Ipv4Addr {
    Ipv4Addr::LOCALHOST
}

/// Transport protocol of a port forward.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// Name used in QEMU's `hostfwd` rule.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}
