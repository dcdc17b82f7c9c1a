//! Fuzzes the native qcow2 header parser and the boot-sector inspection: any bytes must give a
//! header or an error, never a panic, and a parsed header must be self-consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use limiquantix_storage::{BootInspection, Qcow2Header};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Qcow2Header::parse(data) {
        assert!(h.version == 2 || h.version == 3);
        assert!((9..=21).contains(&h.cluster_bits));
        if let Some(b) = &h.backing_file {
            assert!(!b.is_empty() && b.len() <= 1023);
        }
    }
    let _ = BootInspection::from_sectors(data);
});
