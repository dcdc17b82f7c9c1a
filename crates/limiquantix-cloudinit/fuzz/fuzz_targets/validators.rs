//! Fuzzes every validator with arbitrary bytes: none may panic, hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use limiquantix_cloudinit::validate::{
    self, SchemaSource, ValidateOptions, kind, validate_hostname,
};
use limiquantix_cloudinit::yaml11;

fuzz_target!(|data: &[u8]| {
    let options = ValidateOptions {
        schema: SchemaSource::Disabled,
    };
    let _ = validate::validate_user_data(data, &options);
    let _ = validate::validate_vendor_data(data, &options);
    let _ = validate::validate_meta_data(data);
    let _ = validate::validate_network_config(data);
    let _ = kind::detect("user-data", data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = yaml11::load(text);
        let _ = validate_hostname(text);
        let _ = kind::multipart_boundary("user-data", text);
        // A cloud-config body behind the header exercises the YAML path with every input.
        let mut doc = b"#cloud-config\n".to_vec();
        doc.extend_from_slice(data);
        let _ = validate::validate_user_data(&doc, &options);
    }
});
