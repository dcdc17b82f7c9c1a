//! PrepareMigration, ReceiveMigration and MigrateVM over the fake backend: every refusal names
//! its field and changes nothing (the moves themselves are proved against real QEMU in
//! `tests/e2e_migration.rs`).

use super::*;

fn migrate_request(f: impl FnOnce(&mut pb::MigrateVmRequest)) -> pb::MigrateVmRequest {
    let mut r = pb::MigrateVmRequest {
        vm_id: ID.into(),
        target_node_uri: "unix:/run/other/limiquantix-node.sock".into(),
        live: true,
        ..Default::default()
    };
    f(&mut r);
    r
}

async fn refusal(s: &Setup, r: pb::MigrateVmRequest) -> Status {
    match s.service.migrate_vm(Request::new(r)).await {
        Ok(_) => panic!("MigrateVM accepted"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn migrate_vm_refusals_name_their_field() {
    let s = setup();
    create(&s, request(&s)).await.unwrap();
    s.service
        .start_vm(Request::new(pb::VmIdRequest { vm_id: ID.into() }))
        .await
        .unwrap();
    let cases: Vec<(pb::MigrateVmRequest, &str)> = vec![
        (migrate_request(|r| r.live = false), "live"),
        (
            migrate_request(|r| r.target_node_uri = "tcp:10.0.0.2:9443".into()),
            "target_node_uri",
        ),
        (
            migrate_request(|r| r.target_node_uri.clear()),
            "target_node_uri",
        ),
        (
            migrate_request(|r| r.max_downtime_ms = 100_000),
            "max_downtime_ms",
        ),
        (
            migrate_request(|r| r.max_bandwidth_bytes_per_sec = 10),
            "max_bandwidth",
        ),
        (migrate_request(|r| r.vm_id = "nope".into()), "vm_id"),
    ];
    for (r, field) in cases {
        let e = refusal(&s, r).await;
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    let other = migrate_request(|r| r.vm_id = "11111111-2222-4333-8444-555555555555".into());
    assert_eq!(refusal(&s, other).await.code(), Code::NotFound);
    // Nothing changed: the VM still runs here.
    let st = s.service.inner.backend.get(&vm_id()).await.unwrap();
    assert_eq!(st.status.state, VmState::Running);
}

#[tokio::test]
async fn prepare_migration_checks_the_definition_and_the_paths() {
    let s = setup();
    create(&s, request(&s)).await.unwrap();
    let def = s
        .service
        .inner
        .backend
        .get(&vm_id())
        .await
        .unwrap()
        .definition;
    let json = serde_json::to_string(&def).unwrap();
    let prepare = |vm_id: &str, definition_json: String| {
        Request::new(pb::PrepareMigrationRequest {
            vm_id: vm_id.into(),
            definition_json,
            seed_iso: vec![0; 2048],
            ..Default::default()
        })
    };
    let e = s
        .service
        .prepare_migration(prepare(ID, String::new()))
        .await;
    let e = e.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("definition_json"),
        "{}",
        e.message()
    );
    let other = "11111111-2222-4333-8444-555555555555";
    let e = s
        .service
        .prepare_migration(prepare(other, json.clone()))
        .await;
    assert!(e.unwrap_err().message().contains("not vm_id"));
    let e = s.service.prepare_migration(prepare(ID, "{".into())).await;
    assert_eq!(e.unwrap_err().code(), Code::InvalidArgument);
    // A backing image outside this node's images directory and pools.
    let mut outside = def.clone();
    if let limiquantix_vm::model::DiskSource::Overlay { backing, .. } = &mut outside.disks[0].source
    {
        *backing = "/etc/passwd".into();
    }
    let e = s
        .service
        .prepare_migration(prepare(ID, serde_json::to_string(&outside).unwrap()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("disks[0].source.backing"),
        "{}",
        e.message()
    );
    // More memory than this node has available.
    let mut huge = def.clone();
    huge.memory.mib = 4 << 20;
    let e = s
        .service
        .prepare_migration(prepare(ID, serde_json::to_string(&huge).unwrap()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains("needs 4194304 MiB of memory"),
        "{}",
        e.message()
    );
    // The fake backend cannot migrate: a precondition, said as such.
    let e = s
        .service
        .prepare_migration(prepare(ID, json))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("cannot migrate"), "{}", e.message());
}

#[tokio::test]
async fn receive_migration_wants_a_token_it_gave() {
    let s = setup();
    let e = s
        .service
        .receive_migration(Request::new(pb::MigrationToken {
            token: "guess".into(),
            vm_id: ID.into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().starts_with("token"), "{}", e.message());
}
