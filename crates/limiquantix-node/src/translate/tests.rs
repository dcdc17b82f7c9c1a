use super::{Context, Prepared, model_error, prepare_definition};
use crate::confine::Confinement;
use crate::error::ApiError;
use limiquantix_proto::v1 as pb;
use limiquantix_vm::model::{self as m, DiskSource, NicNetwork, VmId};
use std::collections::BTreeMap;
use std::path::PathBuf;

const ID: &str = "0d6b5c3e-8f1a-4c2b-9e7d-1a2b3c4d5e6f";

struct Fx {
    _dir: tempfile::TempDir,
    images: PathBuf,
    confinement: Confinement,
    pools: BTreeMap<String, PathBuf>,
    networks: BTreeMap<String, String>,
}

fn fx() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let images = root.join("images");
    let pool = root.join("pool");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&pool).unwrap();
    std::fs::write(images.join("base.raw"), vec![0u8; 3 << 20]).unwrap();
    std::fs::write(images.join("install.iso"), vec![0u8; 4096]).unwrap();
    std::fs::write(pool.join("data.raw"), vec![0u8; 4096]).unwrap();
    let pools = BTreeMap::from([("fast".to_string(), pool.clone())]);
    Fx {
        confinement: Confinement::new(&images, [pool]),
        _dir: dir,
        images,
        pools,
        networks: BTreeMap::from([(
            "11111111-2222-4333-8444-555555555555".to_string(),
            "br-prod".to_string(),
        )]),
    }
}

fn prepare(f: &Fx, spec: pb::VmSpec) -> Result<Prepared, ApiError> {
    let req = pb::CreateVmOnNodeRequest {
        vm_id: ID.into(),
        name: "vm1".into(),
        spec: Some(spec),
        labels: BTreeMap::new(),
    };
    let ctx = Context {
        confinement: &f.confinement,
        pools: &f.pools,
        console_address: None,
        networks: &f.networks,
        default_network: None,
    };
    // As CreateVM does: the definition as a whole is validated once, after translation.
    let prepared = prepare_definition(&req, VmId::parse(ID).unwrap(), &ctx)?;
    let valid = prepared.definition.into_valid().map_err(model_error)?;
    Ok(Prepared {
        definition: valid.into_inner(),
        ..prepared
    })
}

fn spec(disks: Vec<pb::DiskSpec>) -> pb::VmSpec {
    pb::VmSpec {
        memory_mib: 256,
        disks,
        ..Default::default()
    }
}

#[test]
fn overlay_size_defaults_to_the_backing_size_and_may_not_shrink() {
    let f = fx();
    let backing = f.images.join("base.raw").display().to_string();
    let p = prepare(
        &f,
        spec(vec![pb::DiskSpec {
            backing_file: backing.clone(),
            ..Default::default()
        }]),
    )
    .unwrap();
    assert!(p.has_backing_file);
    assert!(
        matches!(p.definition.disks[0].source, DiskSource::Overlay { size_bytes, .. } if size_bytes == 3 << 20)
    );
    let err = prepare(
        &f,
        spec(vec![pb::DiskSpec {
            backing_file: backing,
            format: 1,
            ..Default::default()
        }]),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("spec.disks[0].format"), "{err}");
}

#[test]
fn path_disks_keep_their_detected_format_and_pool_ids_are_checked() {
    let f = fx();
    let path = f.pools["fast"].join("data.raw").display().to_string();
    let p = prepare(
        &f,
        spec(vec![pb::DiskSpec {
            path: path.clone(),
            pool_id: "fast".into(),
            ..Default::default()
        }]),
    )
    .unwrap();
    assert_eq!(p.definition.disks[0].format, m::DiskFormat::Raw);
    assert!(!p.has_backing_file);
    let err = prepare(
        &f,
        spec(vec![pb::DiskSpec {
            path,
            pool_id: "slow".into(),
            ..Default::default()
        }]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("pool \"slow\" not found"), "{err}");
    // A disk the daemon creates, with a pool: created in the pool's directory.
    let p = prepare(
        &f,
        spec(vec![pb::DiskSpec {
            size_gib: 1,
            pool_id: "fast".into(),
            ..Default::default()
        }]),
    )
    .unwrap();
    assert_eq!(p.definition.disk_dirs["disk0"], f.pools["fast"]);
    let err = prepare(&f, spec(vec![pb::DiskSpec::default()])).unwrap_err();
    assert!(
        err.to_string().starts_with("spec.disks[0].size_gib"),
        "{err}"
    );
}

#[test]
fn boot_order_cdrom_first_numbers_the_cdrom_then_the_disks() {
    let f = fx();
    let mut s = spec(vec![pb::DiskSpec {
        size_gib: 1,
        ..Default::default()
    }]);
    s.cdroms = vec![pb::CdromSpec {
        iso_path: f.images.join("install.iso").display().to_string(),
        bootable: true,
        ..Default::default()
    }];
    s.boot_order = vec![pb::BootDevice::Cdrom as i32, pb::BootDevice::Disk as i32];
    let def = prepare(&f, s).unwrap().definition;
    assert_eq!(def.cdroms[0].boot_index, Some(1));
    assert_eq!(
        def.disks[0].boot_index, None,
        "a blank disk has nothing to boot"
    );
    assert!(!def.boot.network_boot);
}

#[test]
fn nics_networks_and_port_forwards() {
    let f = fx();
    let mut s = spec(vec![]);
    s.nics = vec![pb::NicSpec {
        port_forwards: vec![pb::PortForward {
            host_port: 40022,
            guest_port: 22,
            ..Default::default()
        }],
        ..Default::default()
    }];
    let def = prepare(&f, s.clone()).unwrap().definition;
    assert!(def.nics[0].mac.is_some(), "a stable MAC is recorded");
    assert!(
        matches!(&def.nics[0].network, NicNetwork::User { port_forwards } if port_forwards[0].host_port == 40022)
    );
    // A network the node does not know (a control plane's network UUID) gets user-mode NAT.
    s.nics[0].network = "5b0c3c55-4a8e-4f43-8a4e-0a0b0c0d0e0f".into();
    let def = prepare(&f, s.clone()).unwrap().definition;
    assert!(matches!(&def.nics[0].network, NicNetwork::User { .. }));
    // A network the table names joins its bridge.
    s.nics[0].network = "11111111-2222-4333-8444-555555555555".into();
    s.nics[0].port_forwards.clear();
    let def = prepare(&f, s.clone()).unwrap().definition;
    assert!(matches!(&def.nics[0].network, NicNetwork::Bridge { name } if name == "br-prod"));
    s.nics[0].port_forwards = vec![pb::PortForward {
        host_port: 40022,
        guest_port: 22,
        ..Default::default()
    }];
    s.nics[0].network.clear();
    s.nics[0].port_forwards[0].guest_port = 70000;
    assert!(
        prepare(&f, s)
            .unwrap_err()
            .to_string()
            .contains("guest_port")
    );
}

#[test]
fn reserved_seed_id_and_bad_device_ids() {
    let f = fx();
    let mut s = spec(vec![]);
    s.cdroms = vec![pb::CdromSpec {
        id: "seed".into(),
        ..Default::default()
    }];
    assert!(
        prepare(&f, s.clone())
            .unwrap_err()
            .to_string()
            .contains("reserved")
    );
    s.cdroms[0].id = "Bad,Id".into();
    assert!(
        prepare(&f, s)
            .unwrap_err()
            .to_string()
            .starts_with("spec.cdroms[0].id")
    );
}

#[test]
fn model_errors_use_wire_names() {
    let e = model_error(m::ModelError {
        field: "cpu.cores".into(),
        problem: "x".into(),
    });
    assert_eq!(e.to_string(), "spec.cpu_cores: x");
    let e = model_error(m::ModelError {
        field: "disks[1].bus".into(),
        problem: "y".into(),
    });
    assert_eq!(e.to_string(), "spec.disks[1].bus: y");
}

#[test]
fn control_plane_requests_are_understood() {
    let f = fx();
    // cpu_cores is the total: 4 vCPUs over 2 sockets are 2 cores each.
    let mut s = spec(vec![]);
    s.cpu_cores = 4;
    s.cpu_sockets = 2;
    let def = prepare(&f, s.clone()).unwrap().definition;
    assert_eq!((def.cpu.sockets, def.cpu.cores, def.cpu.vcpus()), (2, 2, 4));
    s.cpu_cores = 3;
    let e = prepare(&f, s).unwrap_err().to_string();
    assert!(
        e.starts_with("spec.cpu_cores") && e.contains("multiple of 2"),
        "{e}"
    );

    // Raw enum casts: disk bus 4 (its IDE) is SATA, NIC model 3 (its VMXNET3) is virtio.
    let mut s = spec(vec![pb::DiskSpec {
        id: "6f1c2b9e-2f4a-4e8e-9c3d-1b2a3c4d5e6f".into(),
        size_gib: 1,
        bus: 4,
        ..Default::default()
    }]);
    s.nics = vec![pb::NicSpec {
        id: "nic-1733338000123456789".into(),
        network: "default".into(),
        model: 3,
        ..Default::default()
    }];
    let def = prepare(&f, s.clone()).unwrap().definition;
    assert_eq!(def.disks[0].bus, m::DiskBus::Sata);
    assert_eq!(def.nics[0].model, m::NicModel::Virtio);
    // The caller's ids map to short device ids; the API keeps speaking the caller's.
    assert_eq!(def.disks[0].id, "disk0");
    assert_eq!(def.api_id("disk0"), "6f1c2b9e-2f4a-4e8e-9c3d-1b2a3c4d5e6f");
    assert_eq!(def.nics[0].id, "nic0");
    assert_eq!(def.device_id_of("nic-1733338000123456789"), "nic0");
    s.disks[0].bus = 5;
    assert!(
        prepare(&f, s.clone())
            .unwrap_err()
            .to_string()
            .starts_with("spec.disks[0].bus")
    );
    s.disks[0].bus = 0;
    s.disks[0].id = "x".repeat(65);
    assert!(
        prepare(&f, s)
            .unwrap_err()
            .to_string()
            .starts_with("spec.disks[0].id")
    );
}
