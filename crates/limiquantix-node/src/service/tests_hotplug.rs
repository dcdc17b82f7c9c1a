//! AttachDisk, DetachDisk, AttachNIC and DetachNIC over the fake backend: the control plane's
//! request, ids, refusals and their codes, events.

use super::*;

fn attach(disk: pb::DiskSpec) -> Request<pb::AttachDiskRequest> {
    Request::new(pb::AttachDiskRequest {
        vm_id: ID.into(),
        disk: Some(disk),
    })
}

fn detach(disk_id: &str) -> Request<pb::DetachDiskRequest> {
    Request::new(pb::DetachDiskRequest {
        vm_id: ID.into(),
        disk_id: disk_id.into(),
        delete_file: false,
    })
}

async fn definition(s: &Setup) -> VmDefinition {
    s.service
        .inner
        .backend
        .get(&vm_id())
        .await
        .unwrap()
        .definition
}

#[tokio::test]
async fn disks_attach_and_detach_as_the_control_plane_asks() {
    let s = setup();
    create(&s, request(&s)).await.unwrap();
    let mut events = s
        .service
        .stream_events(Request::new(()))
        .await
        .unwrap()
        .into_inner();
    let vm = || Request::new(pb::VmIdRequest { vm_id: ID.into() });
    s.service.start_vm(vm()).await.unwrap();
    events.next().await.unwrap().unwrap();
    // The control plane's AttachDisk: a caller's id, a size, a bus; no path, no pool.
    let cp = pb::DiskSpec {
        id: "disk-1700000000123456789".into(),
        size_gib: 2,
        ..Default::default()
    };
    s.service.attach_disk(attach(cp)).await.unwrap();
    let def = definition(&s).await;
    let added = def.disks.last().unwrap();
    assert_eq!(added.id, "disk1");
    assert_eq!(def.api_id("disk1"), "disk-1700000000123456789");
    assert!(matches!(added.source, DiskSource::Blank { size_bytes } if size_bytes == 2 << 30));
    let e = events.next().await.unwrap().unwrap();
    assert_eq!(e.r#type, pb::EventType::DiskAttached as i32);
    assert_eq!(e.metadata["device_id"], "disk1");

    // SATA cannot be hot-plugged; a path outside the roots is refused; no disk is required.
    let sata = pb::DiskSpec {
        size_gib: 1,
        bus: pb::DiskBus::Sata as i32,
        ..Default::default()
    };
    let err = s.service.attach_disk(attach(sata)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    let outside = pb::DiskSpec {
        path: "/etc/passwd".into(),
        ..Default::default()
    };
    let err = s.service.attach_disk(attach(outside)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
    let none = Request::new(pb::AttachDiskRequest {
        vm_id: ID.into(),
        disk: None,
    });
    let err = s.service.attach_disk(none).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // The boot disk is refused, an unknown disk is NOT_FOUND, the caller's id works.
    let err = s.service.detach_disk(detach("disk0")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("boot disk"), "{}", err.message());
    let err = s.service.detach_disk(detach("nope")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let cp_id = "disk-1700000000123456789";
    s.service.detach_disk(detach(cp_id)).await.unwrap();
    assert_eq!(definition(&s).await.disks.len(), 1);
    let e = events.next().await.unwrap().unwrap();
    assert_eq!(e.r#type, pb::EventType::DiskDetached as i32);
}

#[tokio::test]
async fn nics_attach_and_detach_and_get_a_mac() {
    let s = setup();
    create(&s, request(&s)).await.unwrap();
    let nic = pb::NicSpec {
        id: "nic-1700000000123456789".into(),
        ..Default::default()
    };
    let req = Request::new(pb::AttachNicRequest {
        vm_id: ID.into(),
        nic: Some(nic),
    });
    s.service.attach_nic(req).await.unwrap();
    let def = definition(&s).await;
    assert_eq!(def.nics.len(), 2);
    let (a, b) = (def.nics[0].mac.unwrap(), def.nics[1].mac.unwrap());
    assert_ne!(a, b);
    let del = |id: &str| {
        Request::new(pb::DetachNicRequest {
            vm_id: ID.into(),
            nic_id: id.into(),
        })
    };
    s.service
        .detach_nic(del("nic-1700000000123456789"))
        .await
        .unwrap();
    assert_eq!(definition(&s).await.nics.len(), 1);
    let err = s.service.detach_nic(del("nic9")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = s.service.detach_nic(del("")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}
