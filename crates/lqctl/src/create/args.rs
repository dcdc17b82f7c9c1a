//! The flags of `lqctl vm create`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use limiquantix_proto::v1::Firmware;

use crate::units::{parse_disk_gib, parse_duration, parse_memory_mib};

/// Firmware choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FirmwareArg {
    /// Legacy BIOS (SeaBIOS).
    Bios,
    /// UEFI (OVMF).
    Uefi,
    /// Chosen by the daemon from the boot disk's partition table.
    Auto,
}

impl FirmwareArg {
    /// The wire value of this choice.
    pub(super) fn wire(self) -> Firmware {
        match self {
            FirmwareArg::Bios => Firmware::Bios,
            FirmwareArg::Uefi => Firmware::Uefi,
            FirmwareArg::Auto => Firmware::Auto,
        }
    }
}

/// `vm create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The VM's name; also the guest's hostname.
    pub name: String,
    /// A name from the node's image library (`lqctl image list`), or a path on the node. A cloud
    /// image becomes a copy-on-write overlay; an ISO is attached as a bootable CD-ROM.
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// Virtual CPUs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub cpus: u32,
    /// Memory (e.g. 512M, 2G).
    #[arg(long, default_value = "1G", value_parser = parse_memory_mib, value_name = "SIZE")]
    pub memory: u64,
    /// Disk size in whole GiB (e.g. 20G); the image's own size when absent.
    #[arg(long, value_parser = parse_disk_gib, value_name = "SIZE")]
    pub disk_size: Option<u64>,
    /// An SSH public key file (or the key itself) for the guest user; repeatable.
    #[arg(long = "ssh-key", value_name = "FILE")]
    pub ssh_keys: Vec<String>,
    /// The guest user to create [default: admin].
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// A file holding the guest user's password (stored in the seed only as a SHA-512 hash).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// cloud-init user-data file, used as is (then --ssh-key/--user/--password-file are ignored).
    #[arg(long, value_name = "FILE")]
    pub user_data: Option<PathBuf>,
    /// cloud-init meta-data file [default: generated from the VM id and name].
    #[arg(long, value_name = "FILE")]
    pub meta_data: Option<PathBuf>,
    /// cloud-init network-config file (v1 or v2).
    #[arg(long, value_name = "FILE")]
    pub network_config: Option<PathBuf>,
    /// cloud-init vendor-data file.
    #[arg(long, value_name = "FILE")]
    pub vendor_data: Option<PathBuf>,
    /// A network interface, repeatable: `user` (QEMU user-mode networking, the default),
    /// `bridge=BR` or `network=NAME`, followed by options `,model=virtio|e1000|rtl8139`,
    /// `,mac=52:54:00:12:34:56`, `,forward=[tcp|udp:]HOSTPORT:GUESTPORT` (user-mode only).
    #[arg(long = "nic", value_name = "SPEC")]
    pub nics: Vec<String>,
    /// A static address for the first NIC (e.g. 192.0.2.10/24), written as network-config.
    #[arg(long, value_name = "CIDR")]
    pub ip: Option<String>,
    /// The default gateway with --ip.
    #[arg(long, value_name = "IP", requires = "ip")]
    pub gateway: Option<String>,
    /// A DNS server with --ip; repeatable.
    #[arg(long = "dns", value_name = "IP", requires = "ip")]
    pub dns: Vec<String>,
    /// Firmware.
    #[arg(long, value_enum, default_value_t = FirmwareArg::Auto)]
    pub firmware: FirmwareArg,
    /// Forward this host port (on 127.0.0.1) to the guest's SSH port; `auto` picks a free one.
    /// Default: auto when SSH keys are given and the first NIC is user-mode.
    #[arg(long, value_name = "PORT|auto|off")]
    pub ssh_port: Option<String>,
    /// A label KEY=VALUE stored with the VM; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Start the VM once it is defined.
    #[arg(long)]
    pub start: bool,
    /// Start the VM and wait until it is ready (cloud-init done; for an ISO, until it runs).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, value_parser = parse_duration, default_value = "10m", value_name = "DURATION")]
    pub timeout: Duration,
}
