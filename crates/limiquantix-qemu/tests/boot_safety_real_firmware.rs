//! Boot safety with real firmware under TCG. SeaBIOS: the disk boots before a bootable seed ISO,
//! and when the disk cannot boot, the seed is still never booted and no NIC option ROM is tried.
//! OVMF: an unbootable disk never leads to iPXE (unless network boot is asked for). The boot
//! sectors are a few hand-assembled instructions that print a marker on COM1.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::accel_kind;
use limiquantix_qemu::argv::{HostConfig, QemuCommand};
use limiquantix_qemu::firmware::{OvmfPaths, prepare};
use limiquantix_qemu::paths::RuntimePaths;
use limiquantix_storage::create_overlay;
use limiquantix_vm::model::{
    CdromRole, CdromSpec, DiskSource, DiskSpec, Firmware, NicSpec, VmDefinition, VmId,
};

/// 16-bit real-mode code loaded at 0:7C00: print the NUL-terminated string at offset 20 on COM1,
/// then halt.
fn boot_sector(marker: &str, len: usize) -> Vec<u8> {
    let mut b = vec![
        0x31, 0xc0, // xor ax, ax
        0x8e, 0xd8, // mov ds, ax
        0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xbe, 0x14, 0x7c, // mov si, 0x7c14
        0xac, // lodsb
        0x84, 0xc0, // test al, al
        0x74, 0x03, // jz +3
        0xee, // out dx, al
        0xeb, 0xf8, // jmp lodsb
        0xfa, 0xf4, // cli; hlt
    ];
    b.extend_from_slice(marker.as_bytes());
    b.extend_from_slice(b"\r\n\0");
    b.resize(len, 0);
    b
}

/// A raw 1 MiB disk image; with an MBR boot signature when `bootable`.
fn disk_image(dir: &Path, bootable: bool) -> PathBuf {
    let p = dir.join("base.img");
    let mut img = vec![0u8; 1 << 20];
    if bootable {
        img[..512].copy_from_slice(&boot_sector("LQ-BOOT-DISK", 512));
        img[510] = 0x55;
        img[511] = 0xaa;
    }
    std::fs::write(&p, img).unwrap();
    p
}

/// An El Torito (no emulation) bootable ISO whose boot image prints `LQ-BOOT-SEED`.
fn bootable_iso(dir: &Path) -> PathBuf {
    let root = dir.join("iso-root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("boot.bin"), boot_sector("LQ-BOOT-SEED", 2048)).unwrap();
    std::fs::write(root.join("meta-data"), b"instance-id: x\n").unwrap();
    let iso = dir.join("seed.iso");
    let out = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", "cidata", "-b", "boot.bin"])
        .args(["-no-emul-boot", "-boot-load-size", "4", "-o"])
        .arg(&iso)
        .arg(&root)
        .output()
        .expect("xorriso must be installed (scripts/install-deps.sh)");
    assert!(out.status.success(), "{out:?}");
    iso
}

struct Vm {
    child: Child,
    serial: PathBuf,
    debugcon: PathBuf,
}

impl Vm {
    /// Creates the overlay like the backend does, builds the argv and starts QEMU with SeaBIOS's
    /// debug console captured.
    fn start(dir: &Path, disk_bootable: bool, seed_role: CdromRole) -> Self {
        Self::start_with(dir, disk_bootable, seed_role, Firmware::Bios, false)
    }

    fn start_with(
        dir: &Path,
        disk_bootable: bool,
        seed_role: CdromRole,
        firmware: Firmware,
        network_boot: bool,
    ) -> Self {
        let base = disk_image(dir, disk_bootable);
        let iso = bootable_iso(dir);
        let mut def = VmDefinition::new(VmId::generate(), "boot-safety", 128);
        def.firmware = firmware;
        def.boot.network_boot = network_boot;
        def.disks.push(DiskSpec {
            id: "disk0".into(),
            source: DiskSource::Overlay {
                backing: base.clone(),
                size_bytes: 1 << 20,
            },
            bus: Default::default(),
            format: Default::default(),
            readonly: false,
            boot_index: None,
            limits: None,
        });
        def.cdroms.push(CdromSpec {
            id: "seed".into(),
            path: Some(iso),
            bootable: seed_role == CdromRole::Media,
            role: seed_role,
            boot_index: None,
        });
        def.nics.push(NicSpec {
            id: "net0".into(),
            mac: None,
            model: Default::default(),
            network: Default::default(),
        });
        let paths = RuntimePaths::new(dir, dir, &def.id);
        std::fs::create_dir_all(&paths.vm_dir).unwrap();
        std::fs::create_dir_all(&paths.run_dir).unwrap();
        let overlay = paths.disk_file(0, def.disks[0].format);
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(create_overlay(
                Path::new("qemu-img"),
                &base,
                &overlay,
                1 << 20,
            ))
            .unwrap();
        let ovmf = OvmfPaths::discover().expect("ovmf must be installed (scripts/install-deps.sh)");
        let (fw, _) = prepare(&def, &paths, Some(&ovmf)).unwrap();
        let cmd = QemuCommand::build(&def, &paths, &HostConfig::new(accel_kind()), &fw).unwrap();
        let debugcon = dir.join("debugcon.log");
        let child = Command::new("qemu-system-x86_64")
            .args(cmd.args())
            .arg("-chardev")
            .arg(format!("file,id=dbg,path={}", debugcon.display()))
            .args(["-device", "isa-debugcon,iobase=0x402,chardev=dbg"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            serial: paths.serial_log(),
            debugcon,
        }
    }

    /// Waits until `file` contains `needle`; returns the serial log and the debug console.
    fn wait_for(&mut self, which: &str, needle: &str) -> (String, String) {
        self.wait_for_any(which, &[needle])
    }

    /// Waits until `file` contains one of `needles`.
    fn wait_for_any(&mut self, which: &str, needles: &[&str]) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let serial = std::fs::read_to_string(&self.serial).unwrap_or_default();
            let debug = std::fs::read_to_string(&self.debugcon).unwrap_or_default();
            let text = if which == "serial" { &serial } else { &debug };
            if needles.iter().any(|n| text.contains(n)) {
                return (serial, debug);
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "QEMU exited; debugcon: {debug}"
            );
            assert!(
                Instant::now() < deadline,
                "none of {needles:?} in {which}; serial: {serial:?}; debugcon: {debug}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_disk_boots_before_a_bootable_seed() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = Vm::start(dir.path(), true, CdromRole::Seed);
    let (serial, _) = vm.wait_for("serial", "LQ-BOOT-DISK");
    assert!(!serial.contains("LQ-BOOT-SEED"), "{serial}");
}

#[test]
fn an_unbootable_disk_never_falls_to_the_seed_or_ipxe() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = Vm::start(dir.path(), false, CdromRole::Seed);
    let (serial, debug) = vm.wait_for("debugcon", "No bootable device");
    assert!(!serial.contains("LQ-BOOT"), "{serial}");
    assert!(
        !debug.contains("iPXE") && !debug.contains("Booting from ROM"),
        "{debug}"
    );
    assert!(debug.contains("Booting from Hard Disk"), "{debug}");
    assert!(!debug.contains("Booting from DVD/CD"), "{debug}");
}

/// Control: the same ISO as bootable media does boot once the disk fails, so the test above
/// proves the seed's placement, not a broken ISO.
#[test]
fn the_same_iso_as_bootable_media_boots_after_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = Vm::start(dir.path(), false, CdromRole::Media);
    let (_, debug) = vm.wait_for("serial", "LQ-BOOT-SEED");
    let disk = debug.find("Booting from Hard Disk").unwrap();
    let cd = debug.find("Booting from DVD/CD").unwrap();
    assert!(disk < cd, "{debug}");
}

#[test]
fn uefi_with_an_unbootable_disk_never_reaches_ipxe() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = Vm::start_with(dir.path(), false, CdromRole::Seed, Firmware::Uefi, false);
    // OVMF ends in its internal shell (or, in builds without one, says nothing is bootable).
    let (serial, _) = vm.wait_for_any(
        "serial",
        &["EFI Internal Shell", "No bootable option", "PXE"],
    );
    assert!(!serial.contains("PXE"), "{serial}");
    assert!(
        serial.contains("failed to load"),
        "the disk was tried: {serial}"
    );
}

/// Control: with network boot on, the NIC keeps its option ROM and OVMF falls to iPXE, so the
/// test above proves what `romfile: ""` does.
#[test]
fn uefi_with_network_boot_reaches_ipxe() {
    let dir = tempfile::tempdir().unwrap();
    let mut vm = Vm::start_with(dir.path(), false, CdromRole::Seed, Firmware::Uefi, true);
    vm.wait_for("serial", "iPXE");
}
