//! The fake backend's snapshots (an in-memory [`SnapshotTree`] per VM, states by the real
//! table) and the tests of the snapshot handlers: wire mapping, codes, events.

use super::*;
use limiquantix_vm::snapshot::SnapshotTree;
use limiquantix_vm::{SnapshotInfo, SnapshotRequest};

/// Applies `op` and runs `f` on the VM's tree; returns the state before.
fn with_tree<T>(
    fake: &Fake,
    id: &VmId,
    op: VmOp,
    f: impl FnOnce(&mut SnapshotTree, VmState) -> Result<T, BackendError>,
) -> Result<T, BackendError> {
    let state = fake.vms.lock().unwrap().get(id).map(|e| e.status.state);
    fake.apply(id, op)?;
    let mut trees = fake.snapshots.lock().unwrap();
    f(
        trees.entry(id.clone()).or_default(),
        state.unwrap_or(VmState::Stopped),
    )
}

fn emit(fake: &Fake, id: &VmId, kind: VmEventKind) {
    let _ = fake.events.send(VmEvent::now(id.clone(), kind));
}

pub(super) fn snap_create(
    fake: &Fake,
    id: &VmId,
    req: SnapshotRequest,
) -> Result<SnapshotInfo, BackendError> {
    let info = with_tree(fake, id, VmOp::Snapshot, |t, state| {
        t.check_new_name(id, &req.name)?;
        let rec = t.record(&req, state, state.is_active() && !req.disk_only);
        let rid = rec.id.clone();
        t.insert(rec);
        Ok(t.list()
            .into_iter()
            .find(|s| s.id == rid)
            .expect("inserted"))
    })?;
    emit(
        fake,
        id,
        VmEventKind::SnapshotCreated {
            snapshot_id: info.id.clone(),
        },
    );
    Ok(info)
}

pub(super) fn snap_list(fake: &Fake, id: &VmId) -> Result<Vec<SnapshotInfo>, BackendError> {
    fake.vms
        .lock()
        .unwrap()
        .get(id)
        .ok_or_else(|| BackendError::not_found(id))?;
    Ok(fake
        .snapshots
        .lock()
        .unwrap()
        .get(id)
        .map(SnapshotTree::list)
        .unwrap_or_default())
}

pub(super) fn snap_revert(
    fake: &Fake,
    id: &VmId,
    snap: &str,
    stop: bool,
) -> Result<(), BackendError> {
    with_tree(fake, id, VmOp::RevertSnapshot, |t, state| {
        let memory = t.get(id, snap)?.memory;
        if state.is_active() && !memory && !stop {
            return Err(BackendError::Precondition(format!(
                "snapshot {snap} holds no memory"
            )));
        }
        t.current = Some(snap.to_owned());
        Ok(())
    })?;
    emit(
        fake,
        id,
        VmEventKind::SnapshotReverted {
            snapshot_id: snap.into(),
        },
    );
    Ok(())
}

pub(super) fn snap_delete(fake: &Fake, id: &VmId, snap: &str) -> Result<(), BackendError> {
    with_tree(fake, id, VmOp::DeleteSnapshot, |t, _| {
        t.get(id, snap)?;
        t.remove(snap);
        Ok(())
    })?;
    emit(
        fake,
        id,
        VmEventKind::SnapshotDeleted {
            snapshot_id: snap.into(),
        },
    );
    Ok(())
}

fn create_req(name: &str, disk_only: bool) -> Request<pb::CreateSnapshotRequest> {
    Request::new(pb::CreateSnapshotRequest {
        vm_id: ID.into(),
        name: name.into(),
        disk_only,
        ..Default::default()
    })
}

#[tokio::test]
async fn snapshot_rpcs_map_the_tree_codes_and_events() {
    let s = setup();
    create(&s, request(&s)).await.unwrap();
    let svc = &s.service;
    let mut events = svc.event_stream();
    // Stopped: disk-only, no parent, current, vm_state STOPPED.
    let a = svc
        .create_snapshot(create_req("before", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            a.snapshot_id.as_str(),
            a.parent_id.as_str(),
            a.current,
            a.memory
        ),
        ("snap-1", "", true, false)
    );
    assert_eq!(a.vm_state, pb::PowerState::Stopped as i32);
    assert!(a.created_at.is_some());
    let ev = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ev.r#type, pb::EventType::SnapshotCreated as i32);
    assert_eq!(ev.metadata["snapshot_id"], "snap-1");
    // Same name: ALREADY_EXISTS; bad name: INVALID_ARGUMENT naming the field; bad VM id too.
    let dup = svc
        .create_snapshot(create_req("before", false))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists, "{}", dup.message());
    let bad = svc
        .create_snapshot(create_req("a/b", false))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("name"), "{}", bad.message());
    let mut no_vm = create_req("x", false).into_inner();
    no_vm.vm_id = "nope".into();
    let e = NodeDaemonService::create_snapshot(svc, Request::new(no_vm))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // Running: a memory snapshot under the first; disk-only revert refused without stop.
    svc.lifecycle(ID, VmOp::Start, 0).await.unwrap();
    let b = svc
        .create_snapshot(create_req("running", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (b.parent_id.as_str(), b.memory, b.vm_state),
        ("snap-1", true, pb::PowerState::Running as i32)
    );
    let revert = |id: &str, stop| {
        Request::new(pb::RevertSnapshotRequest {
            vm_id: ID.into(),
            snapshot_id: id.into(),
            stop_if_running: stop,
        })
    };
    let e = svc
        .revert_snapshot(revert("snap-1", false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    NodeDaemonService::revert_snapshot(svc, revert("snap-1", true))
        .await
        .unwrap();
    let e = svc
        .revert_snapshot(revert("snap-9", false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(
        NodeDaemonService::revert_snapshot(svc, revert("", false))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    // Delete the first: its child keeps going, under no parent; the list is oldest first.
    let del = pb::DeleteSnapshotRequest {
        vm_id: ID.into(),
        snapshot_id: "snap-1".into(),
    };
    NodeDaemonService::delete_snapshot(svc, Request::new(del))
        .await
        .unwrap();
    let list = svc
        .list_snapshots(Request::new(pb::VmIdRequest { vm_id: ID.into() }))
        .await
        .unwrap()
        .into_inner();
    let got: Vec<_> = list
        .snapshots
        .iter()
        .map(|s| (s.snapshot_id.as_str(), s.parent_id.as_str(), s.current))
        .collect();
    assert_eq!(got, [("snap-2", "", false)]);
}
