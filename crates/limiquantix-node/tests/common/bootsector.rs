//! Cheap running VMs for the scale tests and benchmark: a 1 MiB raw disk whose boot sector
//! prints a line on COM1 and halts (SeaBIOS, then an idle vCPU), 1 vCPU, 32 MiB, no NIC.

use limiquantix_proto::v1 as pb;
use std::path::{Path, PathBuf};

/// A 1 MiB raw disk whose boot sector prints `LQ-SCALE-READY` on COM1, then halts.
pub fn boot_sector_image(images: &Path) -> PathBuf {
    let mut sector = vec![
        0x31, 0xc0, 0x8e, 0xd8, 0xba, 0xf8, 0x03, 0xbe, 0x14, 0x7c, 0xac, 0x84, 0xc0, 0x74, 0x03,
        0xee, 0xeb, 0xf8, 0xfa, 0xf4,
    ];
    sector.extend_from_slice(b"LQ-SCALE-READY\r\n\0");
    let mut img = vec![0u8; 1 << 20];
    img[..sector.len()].copy_from_slice(&sector);
    img[510] = 0x55;
    img[511] = 0xaa;
    let p = images.join("bootsector.img");
    std::fs::write(&p, img).unwrap();
    p
}

/// CreateVM of a boot-sector VM: 1 vCPU, 32 MiB, one overlay on `image`, no NIC.
pub fn request(id: &str, name: &str, image: &Path) -> pb::CreateVmOnNodeRequest {
    pb::CreateVmOnNodeRequest {
        vm_id: id.into(),
        name: name.into(),
        spec: Some(pb::VmSpec {
            cpu_cores: 1,
            memory_mib: 32,
            disks: vec![pb::DiskSpec {
                backing_file: image.display().to_string(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        labels: Default::default(),
    }
}
