//! The definition itself: what a VM is (`vm.json`), its topology, memory, firmware, boot,
//! console and guest OS.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::device::{CdromSpec, DiskSpec, NicSpec};
use super::id::{MacAddr, VmId};

/// The `vm.json` schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// A complete VM definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmDefinition {
    /// Schema version of this document; must equal [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The VM's id (also its directory name and SMBIOS UUID).
    pub id: VmId,
    /// Human name: 1–63 characters, `[A-Za-z0-9][A-Za-z0-9._-]*`.
    pub name: String,
    /// Free-form labels (keys 1–63 characters; values up to 255; no control characters).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// vCPU topology.
    #[serde(default)]
    pub cpu: CpuTopology,
    /// Guest memory.
    pub memory: MemorySpec,
    /// Firmware; `auto` picks BIOS or UEFI from the boot disk's partition table.
    #[serde(default)]
    pub firmware: Firmware,
    /// Machine type; when absent, the guest OS family's default ([`GuestOs::default_machine`]).
    #[serde(default)]
    pub machine: Option<MachineType>,
    /// Boot options.
    #[serde(default)]
    pub boot: BootSpec,
    /// Disks, in the order they are attached.
    #[serde(default)]
    pub disks: Vec<DiskSpec>,
    /// CD-ROM drives.
    #[serde(default)]
    pub cdroms: Vec<CdromSpec>,
    /// Network interfaces.
    #[serde(default)]
    pub nics: Vec<NicSpec>,
    /// Graphical console.
    #[serde(default)]
    pub console: ConsoleSpec,
    /// Guest OS family, which chooses machine, timer and video defaults.
    #[serde(default)]
    pub guest_os: GuestOs,
    /// Digest of the request this definition was made from, so a retried create with the same
    /// request is recognised as the same (set by the daemon; opaque here, up to 128 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_digest: Option<String>,
    /// Boot a kernel directly (QEMU `-kernel`/`-initrd`/`-append`) instead of through the
    /// firmware's boot order; counts as bootable. Meant for test guests and appliances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_kernel: Option<DirectKernelBoot>,
    /// The ids an API caller gave devices where they are not device ids of this node (a
    /// control plane's UUIDs, `disk-<unixnano>`): device id → the caller's id (1 to 64
    /// printable characters, unique). The API keeps speaking the caller's id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub api_ids: BTreeMap<String, String>,
    /// Where the backend creates a disk's file when not in the VM's own directory: disk id →
    /// a directory (a storage pool). Only for disks the backend creates (overlays and blank
    /// disks); the file is `<dir>/<vm id>-disk-<n>.<ext>` and is deleted with the VM.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub disk_dirs: BTreeMap<String, std::path::PathBuf>,
    /// The volume id a created disk of [`VmDefinition::disk_dirs`] has in its pool: disk id →
    /// volume id (1 to 64 letters, digits, `.`, `_`, `-`). Its file is `<dir>/<volume>.<ext>`;
    /// a disk without one keeps the older name `<vm id>-disk-<n>.<ext>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub disk_volumes: BTreeMap<String, String>,
}

/// A kernel booted directly by QEMU, without a boot disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectKernelBoot {
    /// Absolute path of the kernel image (bzImage).
    pub kernel: std::path::PathBuf,
    /// Absolute path of the initramfs, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd: Option<std::path::PathBuf>,
    /// Kernel command line (up to 4096 bytes, no control characters).
    #[serde(default)]
    pub cmdline: String,
}

impl VmDefinition {
    /// A minimal definition: 1 vCPU, `memory_mib` of RAM, firmware `auto`, no devices.
    pub fn new(id: VmId, name: impl Into<String>, memory_mib: u64) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            id,
            name: name.into(),
            labels: BTreeMap::new(),
            cpu: CpuTopology::default(),
            memory: MemorySpec {
                mib: memory_mib,
                hugepages: false,
            },
            firmware: Firmware::Auto,
            machine: None,
            boot: BootSpec::default(),
            disks: Vec::new(),
            cdroms: Vec::new(),
            nics: Vec::new(),
            console: ConsoleSpec::default(),
            guest_os: GuestOs::default(),
            spec_digest: None,
            direct_kernel: None,
            api_ids: BTreeMap::new(),
            disk_dirs: BTreeMap::new(),
            disk_volumes: BTreeMap::new(),
        }
    }

    /// The file name of disk `index` when the backend creates it in a directory of
    /// [`VmDefinition::disk_dirs`]: `<volume id>.<ext>` (see [`VmDefinition::disk_volumes`]),
    /// else `<vm id>-disk-<index>.<ext>`.
    pub fn pool_disk_name(&self, index: usize) -> Option<String> {
        let d = self.disks.get(index)?;
        Some(match self.disk_volumes.get(&d.id) {
            Some(volume) => format!("{volume}.{}", d.format.extension()),
            None => format!("{}-disk-{index}.{}", self.id, d.format.extension()),
        })
    }

    /// The id the API speaks for device `device_id`: the caller's, or the device id itself.
    pub fn api_id<'a>(&'a self, device_id: &'a str) -> &'a str {
        self.api_ids
            .get(device_id)
            .map_or(device_id, String::as_str)
    }

    /// The device id of the device the API calls `api_id` (a caller's id or a device id).
    pub fn device_id_of<'a>(&'a self, api_id: &'a str) -> &'a str {
        self.api_ids
            .iter()
            .find(|(_, a)| a.as_str() == api_id)
            .map_or(api_id, |(d, _)| d.as_str())
    }

    /// The machine type in effect: the explicit one, or the guest OS family's default.
    pub fn effective_machine(&self) -> MachineType {
        self.machine
            .unwrap_or_else(|| self.guest_os.default_machine())
    }

    /// The MAC of NIC number `index`: its explicit `mac`, or the stable derived one.
    pub fn nic_mac(&self, index: usize) -> Option<MacAddr> {
        let nic = self.nics.get(index)?;
        Some(nic.mac.unwrap_or_else(|| MacAddr::derive(&self.id, index)))
    }

    /// Writes the derived MAC into every NIC that has none, so `vm.json` records the addresses
    /// the guest sees (and network-config can match on them).
    pub fn fill_defaults(&mut self) {
        for i in 0..self.nics.len() {
            if self.nics[i].mac.is_none() {
                self.nics[i].mac = Some(MacAddr::derive(&self.id, i));
            }
        }
    }
}

/// vCPU topology; the guest gets `sockets * cores * threads` vCPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuTopology {
    /// CPU sockets (1–16).
    pub sockets: u32,
    /// Cores per socket (1–128).
    pub cores: u32,
    /// Threads per core (1–2).
    pub threads: u32,
}

impl CpuTopology {
    /// Total vCPUs.
    pub fn vcpus(&self) -> u32 {
        self.sockets
            .saturating_mul(self.cores)
            .saturating_mul(self.threads)
    }
}

impl Default for CpuTopology {
    fn default() -> Self {
        Self {
            sockets: 1,
            cores: 1,
            threads: 1,
        }
    }
}

/// Guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySpec {
    /// Size in MiB (16 MiB to 4 TiB).
    pub mib: u64,
    /// Back guest memory with huge pages (needs a hugetlbfs mount on the host).
    #[serde(default)]
    pub hugepages: bool,
}

/// Firmware choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Firmware {
    /// Legacy BIOS (SeaBIOS).
    Bios,
    /// UEFI (OVMF), with a per-VM copy of the variable store.
    Uefi,
    /// Chosen at start from the boot disk's partition table (see `firmware::prepare`).
    #[default]
    Auto,
}

/// QEMU machine type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineType {
    /// Q35 (PCIe, ICH9); the default.
    #[default]
    Q35,
    /// i440FX (`pc`), for old guests.
    Pc,
}

impl MachineType {
    /// QEMU's name for the machine type.
    pub fn qemu_name(self) -> &'static str {
        match self {
            Self::Q35 => "q35",
            Self::Pc => "pc",
        }
    }
}

/// Boot options. The boot order itself follows from the devices (see `argv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootSpec {
    /// Allow network boot (PXE): NICs keep their option ROM and come last in boot order.
    #[serde(default)]
    pub network_boot: bool,
}

/// Graphical console.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSpec {
    /// Serve the display over VNC.
    #[serde(default = "yes")]
    pub vnc: bool,
    /// Address VNC listens on; `127.0.0.1` unless set.
    #[serde(default = "localhost")]
    pub vnc_listen: std::net::Ipv4Addr,
    /// Fixed VNC display number (port 5900 + display, 0–99). When absent QEMU takes the first
    /// free display from 0 to 99; ask QMP `query-vnc` for the one it took.
    #[serde(default)]
    pub vnc_display: Option<u16>,
    /// VNC password (1–8 characters, VNC's limit). Never put on the command line: set over QMP
    /// (`change-vnc-password`) after start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnc_password: Option<String>,
}

fn yes() -> bool {
    true
}

fn localhost() -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::LOCALHOST
}

impl Default for ConsoleSpec {
    fn default() -> Self {
        Self {
            vnc: true,
            vnc_listen: localhost(),
            vnc_display: None,
            vnc_password: None,
        }
    }
}

impl std::fmt::Debug for ConsoleSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSpec")
            .field("vnc", &self.vnc)
            .field("vnc_listen", &self.vnc_listen)
            .field("vnc_display", &self.vnc_display)
            .field(
                "vnc_password",
                &self.vnc_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Guest OS family: picks the machine, clock and video defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestOs {
    /// Linux: q35, RTC in UTC, `virtio-vga`.
    #[default]
    Linux,
    /// Windows: q35, RTC in local time with drift fix, std VGA, Hyper-V enlightenments on KVM.
    Windows,
    /// Anything else: q35, RTC in UTC, std VGA.
    Other,
}

impl GuestOs {
    /// The default machine type for the family.
    pub fn default_machine(self) -> MachineType {
        MachineType::Q35
    }

    /// The QEMU video device for the family.
    pub fn video_device(self) -> &'static str {
        match self {
            Self::Linux => "virtio-vga",
            Self::Windows | Self::Other => "VGA",
        }
    }

    /// Whether the guest expects the RTC in local time.
    pub fn rtc_localtime(self) -> bool {
        matches!(self, Self::Windows)
    }
}
