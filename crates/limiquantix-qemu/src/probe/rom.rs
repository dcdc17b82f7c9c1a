//! The probe guest's firmware image, generated in code.
//!
//! A 64 KiB image that QEMU maps below 4 GiB and at `0xF0000` (`-bios`). The reset vector jumps
//! to the program at `0xF0000`, which:
//!
//! 1. loads a GDT and enters 32-bit protected mode;
//! 2. builds identity page tables at `0x1000` (one 2 MiB page), enables PAE, `EFER.LME` and
//!    paging, and far-jumps into a 64-bit code segment;
//! 3. in long mode writes [`EXIT_VALUE`] to port `0xF4` (`isa-debug-exit`, so QEMU exits with
//!    status `EXIT_VALUE * 2 + 1`), then halts.
//!
//! [`ProbeRom::NeverExits`] is the same program with the port write replaced by two `nop`s: it
//! takes the same path and halts forever, the way a guest hangs on a host whose KVM cannot run
//! it. Hand-assembled (`as --32`, linked at `0xF0000`); the bytes carry their instructions.

/// The byte the probe writes to the exit port.
pub const EXIT_VALUE: u8 = 0x2a;

/// The exit status QEMU ends with when the probe guest reaches the end of its program.
pub const EXIT_STATUS: i32 = (EXIT_VALUE as i32) * 2 + 1;

/// The I/O port of the `isa-debug-exit` device the probe writes to.
pub const EXIT_PORT: u16 = 0xf4;

/// The size of the image (QEMU wants a multiple of 64 KiB).
pub const ROM_SIZE: usize = 0x1_0000;

/// Which probe program the image carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProbeRom {
    /// Reaches long mode and exits through `isa-debug-exit`.
    #[default]
    Exits,
    /// Reaches long mode and halts forever (the probe of a host where guests hang).
    NeverExits,
}

/// Offset of the `out %al, $0xf4` instruction in [`PROGRAM`].
const OUT_OFFSET: usize = 0x87;

/// The program, at `0xF0000`.
#[rustfmt::skip]
const PROGRAM: [u8; 0xb6] = [
    // 16-bit real mode
    0xfa,                               // 00 cli
    0xb8, 0x00, 0xf0,                   // 01 mov $0xf000, %ax
    0x8e, 0xd8,                         // 04 mov %ax, %ds
    0x66, 0x0f, 0x01, 0x16, 0xb0, 0x00, // 06 lgdtl (0xb0)
    0x0f, 0x20, 0xc0,                   // 0c mov %cr0, %eax
    0x66, 0x83, 0xc8, 0x01,             // 0f or $1, %eax (PE)
    0x0f, 0x22, 0xc0,                   // 13 mov %eax, %cr0
    0x66, 0xea, 0x1e, 0x00, 0x0f, 0x00, 0x08, 0x00, // 16 ljmpl $0x08, $0xf001e
    // 32-bit protected mode
    0x66, 0xb8, 0x10, 0x00,             // 1e mov $0x10, %ax
    0x8e, 0xd8,                         // 22 mov %ax, %ds
    0x8e, 0xc0,                         // 24 mov %ax, %es
    0x8e, 0xd0,                         // 26 mov %ax, %ss
    0xbf, 0x00, 0x10, 0x00, 0x00,       // 28 mov $0x1000, %edi
    0x31, 0xc0,                         // 2d xor %eax, %eax
    0xb9, 0x00, 0x0c, 0x00, 0x00,       // 2f mov $0xc00, %ecx
    0xf3, 0xab,                         // 34 rep stosl (zero 0x1000-0x3fff)
    0xc7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x03, 0x20, 0x00, 0x00, // 36 PML4[0] = 0x2003
    0xc7, 0x05, 0x00, 0x20, 0x00, 0x00, 0x03, 0x30, 0x00, 0x00, // 40 PDPT[0] = 0x3003
    0xc7, 0x05, 0x00, 0x30, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00, // 4a PD[0] = 2 MiB page at 0
    0x0f, 0x20, 0xe0,                   // 54 mov %cr4, %eax
    0x83, 0xc8, 0x20,                   // 57 or $0x20, %eax (PAE)
    0x0f, 0x22, 0xe0,                   // 5a mov %eax, %cr4
    0xb8, 0x00, 0x10, 0x00, 0x00,       // 5d mov $0x1000, %eax
    0x0f, 0x22, 0xd8,                   // 62 mov %eax, %cr3
    0xb9, 0x80, 0x00, 0x00, 0xc0,       // 65 mov $0xc0000080, %ecx (EFER)
    0x0f, 0x32,                         // 6a rdmsr
    0x0d, 0x00, 0x01, 0x00, 0x00,       // 6c or $0x100, %eax (LME)
    0x0f, 0x30,                         // 71 wrmsr
    0x0f, 0x20, 0xc0,                   // 73 mov %cr0, %eax
    0x0d, 0x00, 0x00, 0x00, 0x80,       // 76 or $0x80000000, %eax (PG)
    0x0f, 0x22, 0xc0,                   // 7b mov %eax, %cr0
    0xea, 0x85, 0x00, 0x0f, 0x00, 0x18, 0x00, // 7e ljmp $0x18, $0xf0085
    // 64-bit long mode
    0xb0, EXIT_VALUE,                   // 85 mov $EXIT_VALUE, %al
    0xe6, 0xf4,                         // 87 out %al, $0xf4
    0xf4,                               // 89 hlt
    0xeb, 0xfd,                         // 8a jmp 89
    0x00, 0x00, 0x00, 0x00,             // 8c (alignment)
    // 90: GDT: null, 32-bit code, data, 64-bit code
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xaf, 0x00,
    // b0: GDT pointer: limit 31, base 0xf0090
    0x1f, 0x00, 0x90, 0x00, 0x0f, 0x00,
];

/// The reset vector at offset `0xFFF0`: `ljmp $0xf000, $0x0000`.
const RESET_VECTOR: [u8; 5] = [0xea, 0x00, 0x00, 0x00, 0xf0];

/// The firmware image of a probe program.
pub fn probe_rom(kind: ProbeRom) -> Vec<u8> {
    let mut rom = vec![0u8; ROM_SIZE];
    rom[..PROGRAM.len()].copy_from_slice(&PROGRAM);
    if kind == ProbeRom::NeverExits {
        rom[OUT_OFFSET..OUT_OFFSET + 2].copy_from_slice(&[0x90, 0x90]);
    }
    rom[0xfff0..0xfff0 + RESET_VECTOR.len()].copy_from_slice(&RESET_VECTOR);
    rom
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let rom = probe_rom(ProbeRom::Exits);
        assert_eq!(rom.len(), ROM_SIZE);
        assert_eq!(&rom[0xfff0..0xfff5], &RESET_VECTOR);
        assert_eq!(&rom[OUT_OFFSET..OUT_OFFSET + 2], &[0xe6, EXIT_PORT as u8]);
        assert_eq!(rom[OUT_OFFSET - 1], EXIT_VALUE);
        // The GDT pointer names the GDT's linear address.
        assert_eq!(&rom[0xb2..0xb6], &0xf0090u32.to_le_bytes());
        assert_eq!(EXIT_STATUS, 85);
    }

    #[test]
    fn never_exits_differs_only_in_the_port_write() {
        let a = probe_rom(ProbeRom::Exits);
        let b = probe_rom(ProbeRom::NeverExits);
        let diff: Vec<usize> = (0..ROM_SIZE).filter(|&i| a[i] != b[i]).collect();
        assert_eq!(diff, vec![OUT_OFFSET, OUT_OFFSET + 1]);
    }
}
