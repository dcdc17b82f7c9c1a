use super::*;
use crate::model::fixtures::{ID, cloud_vm};

#[test]
fn valid_definition_round_trips() {
    let d = cloud_vm();
    d.validate().unwrap();
    let json = serde_json::to_string_pretty(&d).unwrap();
    let back: VmDefinition = serde_json::from_str(&json).unwrap();
    assert_eq!(back, d);
    assert!(json.contains("\"kind\": \"overlay\""), "{json}");
}

#[test]
fn minimal_json_gets_defaults() {
    let json = format!(
        r#"{{"schema_version":1,"id":"{ID}","name":"a","memory":{{"mib":64}},
            "nics":[{{"id":"net0"}}]}}"#
    );
    let d: VmDefinition = serde_json::from_str(&json).unwrap();
    assert_eq!(d.firmware, Firmware::Auto);
    assert_eq!(d.effective_machine(), MachineType::Q35);
    assert!(d.console.vnc);
    assert_eq!(d.console.vnc_listen, std::net::Ipv4Addr::LOCALHOST);
    assert_eq!(d.nics[0].network, NicNetwork::default());
    assert_eq!(d.cpu.vcpus(), 1);
    d.validate().unwrap();
}

#[test]
fn unknown_fields_are_refused_everywhere() {
    let base = serde_json::to_value(cloud_vm()).unwrap();
    for pointer in [
        "",
        "/memory",
        "/disks/0",
        "/disks/0/source",
        "/cdroms/0",
        "/nics/0/network",
    ] {
        let mut v = base.clone();
        v.pointer_mut(pointer)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert("surprise".into(), 1.into());
        let e = serde_json::from_value::<VmDefinition>(v).unwrap_err();
        assert!(
            e.to_string().contains("unknown field `surprise`"),
            "{pointer}: {e}"
        );
    }
}

#[test]
fn bad_id_in_json_is_refused() {
    let mut v = serde_json::to_value(cloud_vm()).unwrap();
    v["id"] = "../../etc".into();
    let e = serde_json::from_value::<VmDefinition>(v).unwrap_err();
    assert!(e.to_string().contains("is not a VM id"), "{e}");
}

fn field_of(f: impl FnOnce(&mut VmDefinition)) -> String {
    let mut d = cloud_vm();
    f(&mut d);
    let e = d.validate().unwrap_err();
    assert!(!e.problem.is_empty());
    e.field
}

#[test]
fn errors_name_the_field() {
    assert_eq!(field_of(|d| d.schema_version = 2), "schema_version");
    assert_eq!(field_of(|d| d.name = "a,b".into()), "name");
    assert_eq!(field_of(|d| d.cpu.threads = 3), "cpu.threads");
    assert_eq!(field_of(|d| d.memory.mib = 8), "memory.mib");
    assert_eq!(field_of(|d| d.disks[0].id = "Disk".into()), "disks[0].id");
    assert_eq!(
        field_of(|d| d.cdroms[0].id = "disk0".into()),
        "cdroms[0].id"
    );
    assert_eq!(
        field_of(|d| d.disks[0].source = DiskSource::Blank { size_bytes: 1000 }),
        "disks[0].source.size_bytes"
    );
    assert_eq!(
        field_of(|d| d.disks[0].source = DiskSource::Path {
            path: "/a/../etc/x".into()
        }),
        "disks[0].source.path"
    );
    assert_eq!(
        field_of(|d| d.disks[0].source = DiskSource::Path {
            path: "rel.qcow2".into()
        }),
        "disks[0].source.path"
    );
    assert_eq!(
        field_of(|d| d.cdroms[0].path = Some("/a\nb.iso".into())),
        "cdroms[0].path"
    );
    assert_eq!(
        field_of(|d| d.disks[0].format = DiskFormat::Raw),
        "disks[0].format"
    );
    assert_eq!(field_of(|d| d.disks[0].bus = DiskBus::Ide), "disks[0].bus");
    assert_eq!(
        field_of(|d| d.cdroms[0].bootable = true),
        "cdroms[0].bootable"
    );
    assert_eq!(
        field_of(|d| d.disks[0].limits = Some(IoLimits {
            iops_total: Some(10),
            iops_read: Some(5),
            ..IoLimits::default()
        })),
        "disks[0].limits"
    );
    assert_eq!(
        field_of(|d| d.disks[0].limits = Some(IoLimits {
            bps_write: Some(0),
            ..IoLimits::default()
        })),
        "disks[0].limits.bps_write"
    );
    assert_eq!(
        field_of(|d| {
            let n = d.nics[0].clone();
            d.nics.push(NicSpec {
                id: "net1".into(),
                ..n
            });
        }),
        "nics[1].network.port_forwards[0].host_port"
    );
    assert_eq!(
        field_of(|d| d.nics[0].network = NicNetwork::Tap {
            ifname: "tap0;rm".into()
        }),
        "nics[0].network.ifname"
    );
    assert_eq!(
        field_of(|d| d.console.vnc_display = Some(100)),
        "console.vnc_display"
    );
    assert_eq!(
        field_of(|d| d.console.vnc_password = Some("too-long-pw".into())),
        "console.vnc_password"
    );
    assert_eq!(
        field_of(|d| d.spec_digest = Some("a b".into())),
        "spec_digest"
    );
    assert_eq!(
        field_of(|d| {
            d.disks[0].boot_index = Some(1);
            d.cdroms.push(CdromSpec {
                id: "iso".into(),
                path: Some("/x.iso".into()),
                bootable: true,
                role: CdromRole::Media,
                boot_index: Some(1),
            });
        }),
        "cdroms[1].boot_index"
    );
}

#[test]
fn non_utf8_path_is_refused_with_reason() {
    use std::os::unix::ffi::OsStrExt;
    let mut d = cloud_vm();
    d.disks[0].source = DiskSource::Path {
        path: std::ffi::OsStr::from_bytes(b"/img/\xff.qcow2").into(),
    };
    let e = d.validate().unwrap_err();
    assert_eq!(e.field, "disks[0].source.path");
    assert!(e.problem.contains("UTF-8"), "{e}");
}

#[test]
fn console_debug_redacts_password() {
    let mut d = cloud_vm();
    d.console.vnc_password = Some("s3cret".into());
    assert!(!format!("{d:?}").contains("s3cret"));
}

#[test]
fn fill_defaults_records_derived_macs() {
    let mut d = cloud_vm();
    let mac = d.nic_mac(0).unwrap();
    d.fill_defaults();
    assert_eq!(d.nics[0].mac, Some(mac));
}

#[test]
fn caller_ids_map_to_device_ids() {
    let mut d = cloud_vm();
    let uuid = "6f1c2b9e-2f4a-4e8e-9c3d-1b2a3c4d5e6f";
    d.api_ids.insert("disk0".into(), uuid.into());
    d.validate().unwrap();
    assert_eq!(d.api_id("disk0"), uuid);
    assert_eq!(d.api_id("net0"), "net0");
    assert_eq!(d.device_id_of(uuid), "disk0");
    assert_eq!(d.device_id_of("net0"), "net0");
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(serde_json::from_str::<VmDefinition>(&json).unwrap(), d);

    let field = |f: &dyn Fn(&mut VmDefinition)| {
        let mut d = cloud_vm();
        f(&mut d);
        d.validate().unwrap_err().field
    };
    assert_eq!(
        field(&|d| {
            d.api_ids.insert("nope".into(), "x".into());
        }),
        "api_ids.nope"
    );
    assert_eq!(
        field(&|d| {
            d.api_ids.insert("disk0".into(), "a\nb".into());
        }),
        "api_ids.disk0"
    );
    assert_eq!(
        field(&|d| {
            d.api_ids.insert("disk0".into(), "net0".into());
        }),
        "api_ids.disk0"
    );
    assert_eq!(
        field(&|d| {
            d.api_ids.insert("disk0".into(), "x".repeat(65));
        }),
        "api_ids.disk0"
    );
}
