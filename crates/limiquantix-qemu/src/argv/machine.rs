//! Machine, accelerator, CPU, memory, firmware, clock and boot options.

use serde_json::json;

use super::common::{Argv, utf8};
use super::types::{BootError, HostConfig, ResolvedFirmware};
use super::{blockdev, chardev};
use limiquantix_vm::accel::AccelKind;
use limiquantix_vm::model::{GuestOs, VmDefinition};

/// Emits everything up to (not including) the devices.
pub(super) fn machine(
    a: &mut Argv,
    def: &VmDefinition,
    host: &HostConfig,
    firmware: &ResolvedFirmware,
) -> Result<(), BootError> {
    a.flag("-nodefaults");
    a.flag("-no-user-config");
    a.opt(
        "-name",
        chardev::with_value("guest=", def.name.as_ref(), ""),
    );
    a.opt("-uuid", def.id.as_str());
    a.opt("-msg", "timestamp=on");
    a.opt("-machine", machine_option(def, firmware));
    a.opt("-accel", host.accel.qemu_name());
    a.opt("-cpu", cpu_model(def.guest_os, host.accel));
    cpus_and_memory(a, def, host)?;
    firmware_flash(a, firmware)?;
    clock_and_boot(a, def, host);
    Ok(())
}

/// The `-machine` value: the machine type, the firmware's flash devices or the BIOS console
/// setting, and the hugepage memory backend.
fn machine_option(def: &VmDefinition, firmware: &ResolvedFirmware) -> String {
    let mut machine_opt = format!("type={}", def.effective_machine().qemu_name());
    match firmware {
        ResolvedFirmware::Uefi { .. } => machine_opt.push_str(",pflash0=fw-code,pflash1=fw-vars"),
        // SeaBIOS mirrors its console to the serial port only when told there are no graphics
        // (the display still works): its banner, `Booting from Hard Disk` and `No bootable
        // device` then reach serial.log, where readiness reads them.
        ResolvedFirmware::Bios => machine_opt.push_str(",graphics=off"),
    }
    if def.memory.hugepages {
        machine_opt.push_str(",memory-backend=ram0");
    }
    machine_opt
}

/// `-smp`, `-m` and, with hugepages, the file-backed memory object.
fn cpus_and_memory(a: &mut Argv, def: &VmDefinition, host: &HostConfig) -> Result<(), BootError> {
    let c = def.cpu;
    a.opt(
        "-smp",
        format!(
            "cpus={},sockets={},cores={},threads={}",
            c.vcpus(),
            c.sockets,
            c.cores,
            c.threads
        ),
    );
    a.opt("-m", format!("{}M", def.memory.mib));
    if def.memory.hugepages {
        let dir = utf8("host.hugepages_dir", &host.hugepages_dir)?;
        a.json(
            "-object",
            json!({
                "qom-type": "memory-backend-file",
                "id": "ram0",
                "size": def.memory.mib << 20,
                "mem-path": dir,
                "prealloc": true,
            }),
        );
    }
    Ok(())
}

/// The UEFI code and variable stores as pflash block devices (nothing for BIOS).
fn firmware_flash(a: &mut Argv, firmware: &ResolvedFirmware) -> Result<(), BootError> {
    if let ResolvedFirmware::Uefi { code, vars } = firmware {
        for v in blockdev::pflash("fw-code", utf8("firmware.code", code)?, true) {
            a.json("-blockdev", v);
        }
        for v in blockdev::pflash("fw-vars", utf8("firmware.vars", vars)?, false) {
            a.json("-blockdev", v);
        }
    }
    Ok(())
}

/// The real-time clock, the Windows timer fix under KVM, strict boot order and a direct kernel.
fn clock_and_boot(a: &mut Argv, def: &VmDefinition, host: &HostConfig) {
    a.opt(
        "-rtc",
        if def.guest_os.rtc_localtime() {
            "base=localtime,driftfix=slew"
        } else {
            "base=utc"
        },
    );
    if def.guest_os == GuestOs::Windows && host.accel == AccelKind::Kvm {
        a.opt("-global", "kvm-pit.lost_tick_policy=delay");
    }
    a.opt("-boot", "strict=on");
    if let Some(k) = &def.direct_kernel {
        // Each value is a whole argument that QEMU takes verbatim (no option parsing).
        a.opt("-kernel", k.kernel.as_os_str());
        if let Some(initrd) = &k.initrd {
            a.opt("-initrd", initrd.as_os_str());
        }
        a.opt("-append", k.cmdline.as_str());
    }
}

fn cpu_model(os: GuestOs, accel: AccelKind) -> &'static str {
    match (accel, os) {
        (AccelKind::Kvm, GuestOs::Windows) => {
            "host,hv_relaxed=on,hv_vapic=on,hv_spinlocks=0x1fff,hv_time=on"
        }
        (AccelKind::Kvm, _) => "host",
        (AccelKind::Tcg, _) => "max",
    }
}
