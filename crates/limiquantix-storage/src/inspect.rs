//! Boot inspection: what firmware can boot an image, from its partition table.
//!
//! Reads the first sectors of the guest disk (see [`super::guest`]): the MBR (boot signature,
//! boot code, partition types) and, when present, the GPT header and partition entries (BIOS boot
//! partition, EFI system partition).

use std::path::Path;

use crate::error::StorageError;
use crate::guest::read_guest_start;

/// GPT type GUID of an EFI system partition (C12A7328-F81F-11D2-BA4B-00A0C93EC93B), on-disk order.
const ESP_GUID: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];
/// GPT type GUID of a BIOS boot partition (21686148-6449-6E6F-744E-656564454649), on-disk order.
const BIOS_BOOT_GUID: [u8; 16] = [
    0x48, 0x61, 0x68, 0x21, 0x49, 0x64, 0x6f, 0x6e, 0x74, 0x4e, 0x65, 0x65, 0x64, 0x45, 0x46, 0x49,
];
/// MBR partition type of an EFI system partition.
const MBR_ESP: u8 = 0xef;
/// MBR partition type of a GPT protective partition.
const MBR_PROTECTIVE: u8 = 0xee;
/// Guest bytes read: MBR, GPT header and 128 entries of 128 bytes at LBA 2.
const READ_LEN: usize = 34 * 512;

/// The partition table found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionTable {
    /// No MBR boot signature: blank or unpartitioned.
    None,
    /// An MBR (DOS) partition table.
    Mbr,
    /// A GPT (with its protective MBR).
    Gpt,
}

/// What the first sectors of a disk say about booting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootInspection {
    /// The partition table.
    pub table: PartitionTable,
    /// The MBR has the `55 AA` signature and non-zero boot code (what BIOS runs).
    pub mbr_boot_code: bool,
    /// A GPT BIOS boot partition (GRUB's core image on GPT disks).
    pub bios_boot_partition: bool,
    /// An EFI system partition (GPT type or MBR type `0xEF`).
    pub esp: bool,
}

impl BootInspection {
    /// Whether legacy BIOS can boot the disk.
    pub fn bios_bootable(&self) -> bool {
        self.mbr_boot_code
    }

    /// Whether UEFI can boot the disk.
    pub fn uefi_bootable(&self) -> bool {
        self.esp
    }

    /// Inspects the first sectors of a guest disk.
    pub fn from_sectors(disk: &[u8]) -> Self {
        let mut r = Self {
            table: PartitionTable::None,
            mbr_boot_code: false,
            bios_boot_partition: false,
            esp: false,
        };
        if disk.len() < 512 || disk[510..512] != [0x55, 0xaa] {
            return r;
        }
        r.table = PartitionTable::Mbr;
        r.mbr_boot_code = disk[..440].iter().any(|&b| b != 0);
        let types: Vec<u8> = (0..4).map(|i| disk[446 + 16 * i + 4]).collect();
        r.esp = types.contains(&MBR_ESP);
        if types.contains(&MBR_PROTECTIVE) && disk.len() >= 1024 && &disk[512..520] == b"EFI PART" {
            r.table = PartitionTable::Gpt;
            let le32 = |at: usize| {
                u32::from_le_bytes([disk[at], disk[at + 1], disk[at + 2], disk[at + 3]])
            };
            let le64 = |at: usize| u64::from(le32(at)) | (u64::from(le32(at + 4)) << 32);
            let entries_lba = le64(512 + 72);
            let count = le32(512 + 80) as usize;
            let size = le32(512 + 84) as usize;
            if size >= 128 && entries_lba >= 2 {
                for i in 0..count {
                    let Some(at) = usize::try_from(entries_lba)
                        .ok()
                        .and_then(|l| l.checked_mul(512))
                        .and_then(|b| b.checked_add(i.checked_mul(size)?))
                    else {
                        break;
                    };
                    let Some(ty) = disk.get(at..at + 16) else {
                        break;
                    };
                    r.esp |= ty == ESP_GUID;
                    r.bios_boot_partition |= ty == BIOS_BOOT_GUID;
                }
            }
        }
        r
    }
}

/// Inspects the image at `path` (raw or qcow2, following backing files; blocking I/O).
pub fn inspect_boot(path: &Path) -> Result<BootInspection, StorageError> {
    Ok(BootInspection::from_sectors(&read_guest_start(
        path, READ_LEN,
    )?))
}
