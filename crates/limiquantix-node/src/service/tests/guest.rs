//! The fake backend's guest-agent operations and the tests of the guest handlers: request
//! checks (INVALID_ARGUMENT naming the field), wire mapping, codes.

use super::*;

/// A running VM answers; anything else is the agent's precondition.
pub(super) async fn running(fake: &Fake, id: &VmId) -> Result<(), BackendError> {
    let e = fake.get(id).await?;
    if e.status.state != VmState::Running {
        return Err(BackendError::Precondition(
            "the guest agent does not answer: not running".into(),
        ));
    }
    Ok(())
}

/// `exit N` exits with N; anything else echoes its arguments; `sleep` times out.
pub(super) async fn exec(
    fake: &Fake,
    id: &VmId,
    e: g::GuestExec,
) -> Result<g::GuestExecResult, BackendError> {
    running(fake, id).await?;
    let code = match e.path.as_str() {
        "exit" => e.args[0].parse().unwrap(),
        _ => 0,
    };
    Ok(g::GuestExecResult {
        pid: 42,
        exited: e.wait && e.path != "sleep",
        exit_code: (e.wait && e.path != "sleep").then_some(code),
        stdout: e.args.join(" ").into_bytes(),
        stdout_truncated: e.path == "big",
        timed_out: e.path == "sleep",
        kill_sent: e.path == "sleep",
        duration: e.timeout,
        ..Default::default()
    })
}

async fn running_vm() -> Setup {
    let s = setup();
    create(&s, request(&s)).await.unwrap();
    s.service
        .start_vm(Request::new(pb::VmIdRequest { vm_id: ID.into() }))
        .await
        .unwrap();
    s
}

fn exec_req(command: &str, args: &[&str]) -> pb::ExecuteInGuestRequest {
    pb::ExecuteInGuestRequest {
        vm_id: ID.into(),
        command: command.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        wait_for_exit: true,
        ..Default::default()
    }
}

fn field_of(e: Status) -> String {
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    e.message().to_owned()
}

#[tokio::test]
async fn exec_maps_exit_status_timeouts_and_truncation() {
    let s = running_vm().await;
    let call = |r| s.service.execute_in_guest(Request::new(r));
    let ok = call(exec_req("/bin/echo", &["hi", "there"]))
        .await
        .unwrap()
        .into_inner();
    assert!(
        ok.success && ok.exit_code == 0 && ok.error.is_empty(),
        "{ok:?}"
    );
    assert_eq!(
        (ok.stdout.as_str(), ok.pid, ok.duration_ms),
        ("hi there", 42, 30_000)
    );
    let three = call(exec_req("exit", &["3"])).await.unwrap().into_inner();
    assert!(!three.success && three.exit_code == 3, "{three:?}");
    assert!(three.error.contains("status 3"), "{}", three.error);
    let slow = call(exec_req("sleep", &["9"])).await.unwrap().into_inner();
    assert!(
        slow.timed_out && !slow.success && slow.exit_code == -1,
        "{slow:?}"
    );
    assert!(slow.error.contains("SIGKILL"), "{}", slow.error);
    assert!(
        call(exec_req("big", &[]))
            .await
            .unwrap()
            .into_inner()
            .stdout_truncated
    );
    let mut detached = exec_req("/bin/true", &[]);
    detached.wait_for_exit = false;
    let d = call(detached).await.unwrap().into_inner();
    assert!(d.success && d.pid == 42, "{d:?}");
}

#[tokio::test]
async fn exec_requests_are_checked_field_by_field() {
    let s = running_vm().await;
    let call = |r| s.service.execute_in_guest(Request::new(r));
    assert!(field_of(call(exec_req("", &[])).await.unwrap_err()).contains("command"));
    let mut long = exec_req("x", &[]);
    long.timeout_seconds = 301;
    assert!(field_of(call(long).await.unwrap_err()).contains("timeout_seconds"));
    let mut cwd = exec_req("x", &[]);
    cwd.working_directory = "/tmp".into();
    assert!(field_of(call(cwd).await.unwrap_err()).contains("working_directory"));
    let mut env = exec_req("x", &[]);
    env.environment.insert("A=B".into(), "c".into());
    assert!(field_of(call(env).await.unwrap_err()).contains("environment"));
    let mut input = exec_req("x", &[]);
    input.input_data = vec![0; g::EXEC_INPUT_MAX + 1];
    assert!(field_of(call(input).await.unwrap_err()).contains("input_data"));
}

#[tokio::test]
async fn file_requests_are_checked_and_answered() {
    let s = running_vm().await;
    let read = |path: &str, offset, max_size| pb::ReadGuestFileRequest {
        vm_id: ID.into(),
        path: path.into(),
        offset,
        max_size,
    };
    let svc = &s.service;
    let r = svc
        .read_guest_file(Request::new(read("/etc/hostname", 5, 0)))
        .await
        .unwrap();
    assert!(r.get_ref().success && r.get_ref().total_size == 5);
    let e = svc
        .read_guest_file(Request::new(read("", 0, 0)))
        .await
        .unwrap_err();
    assert!(field_of(e).contains("path"));
    let e = svc
        .read_guest_file(Request::new(read("/x", 0, g::FILE_MAX + 1)))
        .await;
    assert!(field_of(e.unwrap_err()).contains("max_size"));
    let e = svc
        .read_guest_file(Request::new(read("/x", u64::MAX, 1)))
        .await;
    assert!(field_of(e.unwrap_err()).contains("offset"));
    let write = |data: Vec<u8>, mode| pb::WriteGuestFileRequest {
        vm_id: ID.into(),
        path: "/root/f".into(),
        data,
        mode,
        ..Default::default()
    };
    let w = svc
        .write_guest_file(Request::new(write(vec![1; 10], 0o600)))
        .await
        .unwrap();
    assert_eq!(w.get_ref().bytes_written, 10);
    let e = svc
        .write_guest_file(Request::new(write(vec![], 0o10000)))
        .await
        .unwrap_err();
    assert!(field_of(e).contains("mode"));
    let big = vec![0; g::FILE_MAX as usize + 1];
    let e = svc
        .write_guest_file(Request::new(write(big, 0)))
        .await
        .unwrap_err();
    assert!(field_of(e).contains("data"));
}

#[tokio::test]
async fn shutdown_freeze_and_time_map_and_need_a_running_guest() {
    let s = setup();
    create(&s, request(&s)).await.unwrap();
    let svc = &s.service;
    let sync = || pb::SyncTimeRequest {
        vm_id: ID.into(),
        ..Default::default()
    };
    let stopped = svc.sync_time(Request::new(sync())).await.unwrap_err();
    assert_eq!(stopped.code(), Code::FailedPrecondition, "{stopped:?}");
    assert!(stopped.message().contains("does not answer"));
    svc.start_vm(Request::new(pb::VmIdRequest { vm_id: ID.into() }))
        .await
        .unwrap();
    let t = svc
        .sync_time(Request::new(sync()))
        .await
        .unwrap()
        .into_inner();
    assert!(t.success && t.time_source == "host", "{t:?}");
    let freeze = pb::QuiesceFilesystemsRequest {
        vm_id: ID.into(),
        ..Default::default()
    };
    let f = svc
        .quiesce_filesystems(Request::new(freeze.clone()))
        .await
        .unwrap();
    assert_eq!(
        (f.get_ref().frozen_count, f.get_ref().quiesce_token.as_str()),
        (2, "t")
    );
    let long = pb::QuiesceFilesystemsRequest {
        timeout_seconds: 601,
        ..freeze
    };
    let e = svc
        .quiesce_filesystems(Request::new(long))
        .await
        .unwrap_err();
    assert!(field_of(e).contains("timeout_seconds"));
    let thaw = pb::ThawFilesystemsRequest {
        vm_id: ID.into(),
        ..Default::default()
    };
    assert_eq!(
        svc.thaw_filesystems(Request::new(thaw))
            .await
            .unwrap()
            .get_ref()
            .thawed_count,
        2
    );
    let down = pb::GuestShutdownRequest {
        vm_id: ID.into(),
        delay_seconds: 5,
        ..Default::default()
    };
    assert!(
        field_of(svc.guest_shutdown(Request::new(down)).await.unwrap_err())
            .contains("delay_seconds")
    );
    let down = pb::GuestShutdownRequest {
        vm_id: ID.into(),
        ..Default::default()
    };
    assert!(
        svc.guest_shutdown(Request::new(down))
            .await
            .unwrap()
            .get_ref()
            .accepted
    );
}
