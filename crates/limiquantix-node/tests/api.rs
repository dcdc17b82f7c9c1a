//! The daemon binary through its gRPC API, without booting guests: health, reflection, node
//! facts, CreateVM's seeds, hostile inputs, secrets in logs, configuration precedence.

mod common;

use common::{Node, cloud_vm, iso_file};
use limiquantix_proto::v1 as pb;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use tokio_stream::StreamExt as _;
use tonic::Code;

const ID: &str = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";

#[tokio::test]
async fn health_reflection_node_info_and_pending_rpcs() {
    let mut node = Node::new();
    node.start();
    let channel =
        tonic::transport::Endpoint::from_shared(format!("unix:{}", node.socket().display()))
            .unwrap()
            .connect()
            .await
            .unwrap();

    // gRPC health, as `grpc_health_probe` asks it.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for service in ["", limiquantix_proto::SERVICE_NAME] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }

    // Server reflection, as `grpcurl list` asks it.
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.next().await.unwrap().unwrap().message_response
    else {
        panic!("no service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&limiquantix_proto::SERVICE_NAME.to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );

    let mut client = node.client().await;
    let h = client
        .health_check(pb::HealthCheckRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(h.healthy);
    assert_eq!(h.hypervisor, "qemu");
    assert!(
        h.hypervisor_version
            .chars()
            .next()
            .unwrap()
            .is_ascii_digit(),
        "{h:?}"
    );

    let info = client.get_node_info(()).await.unwrap().into_inner();
    let cpu = info.cpu.unwrap();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    assert!(cpuinfo.contains(&cpu.model), "{}", cpu.model);
    assert_eq!(
        cpu.total_threads as usize,
        cpuinfo.matches("processor\t:").count()
    );
    assert!(info.memory.unwrap().total_bytes > 1 << 30);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(info.kernel_version, release.trim());
    assert_eq!(info.hypervisor_version, h.hypervisor_version);
    assert!(
        info.capabilities
            .unwrap()
            .name
            .contains(&limiquantix_test_support::accel())
    );

    let err = client
        .prepare_migration(pb::PrepareMigrationRequest::default())
        .await
        .unwrap_err();
    // Every RPC is implemented: a bad PrepareMigration is refused naming its field.
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("vm_id"), "{}", err.message());
    assert!(node.terminate().success());
    assert!(!node.socket().exists(), "the socket is removed at shutdown");
}

#[tokio::test]
async fn cloud_image_gets_the_default_seed_and_blank_disk_gets_none() {
    let mut node = Node::new();
    let image = node.small_image("cloud.qcow2");
    node.start();
    let mut client = node.client().await;

    let mut req = cloud_vm(ID, "web1", &image);
    req.spec.as_mut().unwrap().default_seed = Some(pb::DefaultSeedOptions {
        ssh_authorized_keys: vec![
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests test@lq".into(),
        ],
        ..Default::default()
    });
    req.labels.insert("role".into(), "web".into());
    let r = client.create_vm(req.clone()).await.unwrap().into_inner();
    assert!(r.created, "{r:?}");

    let vm_dir = node.state.join("vms").join(ID);
    let seed = vm_dir.join("cloud-init.iso");
    let mode = std::fs::metadata(&seed).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let user_data = String::from_utf8(iso_file(&seed, "user-data")).unwrap();
    assert!(user_data.starts_with("#cloud-config\n"), "{user_data}");
    for needle in [
        "admin",
        "qemu-guest-agent",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests",
        "web1",
    ] {
        assert!(
            user_data.contains(needle),
            "{needle} missing in:\n{user_data}"
        );
    }
    let meta = String::from_utf8(iso_file(&seed, "meta-data")).unwrap();
    assert!(meta.contains(ID) && meta.contains("web1"), "{meta}");
    let overlay = std::fs::read_dir(&vm_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("disk"))
        .expect("an overlay disk");
    let info = Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(vm_dir.join(&overlay))
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains("cloud.qcow2") && info.contains("\"backing-filename-format\": \"qcow2\""),
        "{info}"
    );

    // The seed CD-ROM comes after the disk and is not bootable.
    let status = client
        .get_vm_status(pb::VmIdRequest { vm_id: ID.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.labels["role"], "web");
    assert_eq!(status.state, pb::PowerState::Stopped as i32);
    let def: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vm_dir.join("vm.json")).unwrap()).unwrap();
    let cdroms = def["cdroms"].as_array().unwrap();
    assert_eq!(cdroms.last().unwrap()["role"], "seed");
    assert_eq!(cdroms.last().unwrap()["bootable"], false);

    // Idempotent: the same request succeeds again; another spec for the id does not.
    let again = client.create_vm(req.clone()).await.unwrap().into_inner();
    assert!(!again.created);
    let mut other = req.clone();
    other.spec.as_mut().unwrap().memory_mib = 512;
    assert_eq!(
        client.create_vm(other).await.unwrap_err().code(),
        Code::AlreadyExists
    );

    // A blank-disk VM (an installation from an ISO) gets no seed.
    let blank_id = "7a1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
    let mut blank = cloud_vm(blank_id, "blank1", &image);
    blank.spec.as_mut().unwrap().disks = vec![pb::DiskSpec {
        size_gib: 1,
        ..Default::default()
    }];
    client.create_vm(blank).await.unwrap();
    assert!(
        !node
            .state
            .join("vms")
            .join(blank_id)
            .join("cloud-init.iso")
            .exists()
    );
    let list = client.list_v_ms(()).await.unwrap().into_inner();
    assert_eq!(list.vms.len(), 2);
}

#[tokio::test]
async fn all_four_cloud_init_documents_are_in_the_seed_byte_exact() {
    let mut node = Node::new();
    let image = node.small_image("cloud.qcow2");
    node.start();
    let mut client = node.client().await;
    let docs = pb::CloudInitConfig {
        user_data:
            "#cloud-config\n# a comment kept as is\nruncmd:\n  - [sh, -c, 'echo héllo > /marker']\n"
                .into(),
        meta_data: "instance-id: custom-iid-1\nlocal-hostname: custom\n".into(),
        network_config: "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n".into(),
        vendor_data: "#cloud-config\npackages: [htop]\n".into(),
    };
    let mut req = cloud_vm(ID, "custom", &image);
    req.spec.as_mut().unwrap().cloud_init = Some(docs.clone());
    client.create_vm(req).await.unwrap();
    let seed = node.state.join("vms").join(ID).join("cloud-init.iso");
    assert_eq!(iso_file(&seed, "user-data"), docs.user_data.as_bytes());
    assert_eq!(iso_file(&seed, "meta-data"), docs.meta_data.as_bytes());
    assert_eq!(
        iso_file(&seed, "network-config"),
        docs.network_config.as_bytes()
    );
    assert_eq!(iso_file(&seed, "vendor-data"), docs.vendor_data.as_bytes());
    let label = Command::new("isoinfo")
        .arg("-d")
        .arg("-i")
        .arg(&seed)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&label.stdout).contains("Volume id: cidata"));
}

#[tokio::test]
async fn hostile_inputs_are_refused_and_leave_nothing_on_disk() {
    let mut node = Node::new();
    let image = node.small_image("cloud.qcow2");
    let outside = node.root.join("outside.qcow2");
    std::fs::copy(&image, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, node.pool.join("escape.qcow2")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", node.images.join("shadow.qcow2")).unwrap();
    node.start();
    let mut client = node.client().await;

    type Mutation = Box<dyn Fn(&mut pb::CreateVmOnNodeRequest)>;
    let disk0 = |f: fn(&mut pb::DiskSpec)| -> Mutation {
        Box::new(move |r| f(&mut r.spec.as_mut().unwrap().disks[0]))
    };
    let escape = node.pool.join("escape.qcow2").display().to_string();
    let shadow_link = node.images.join("shadow.qcow2").display().to_string();
    let cases: Vec<(&str, Code, &str, Mutation)> = vec![
        (
            "vm_id ../../etc",
            Code::InvalidArgument,
            "vm_id",
            Box::new(|r| r.vm_id = "../../etc".into()),
        ),
        (
            "name with newline",
            Code::InvalidArgument,
            "name",
            Box::new(|r| r.name = "web\n1".into()),
        ),
        (
            "name with comma",
            Code::InvalidArgument,
            "name",
            Box::new(|r| r.name = "web,file=/etc/passwd".into()),
        ),
        (
            "name with quote",
            Code::InvalidArgument,
            "name",
            Box::new(|r| r.name = "web\"1".into()),
        ),
        (
            "backing /etc/shadow",
            Code::PermissionDenied,
            "backing_file",
            disk0(|d| d.backing_file = "/etc/shadow".into()),
        ),
        (
            "backing via ..",
            Code::InvalidArgument,
            "backing_file",
            Box::new(|r| {
                let images = r.spec.as_ref().unwrap().disks[0].backing_file.clone();
                r.spec.as_mut().unwrap().disks[0].backing_file =
                    format!("{images}/../../../../etc/shadow");
            }),
        ),
        (
            "symlink escaping the pool",
            Code::PermissionDenied,
            "backing_file",
            Box::new({
                let escape = escape.clone();
                move |r| r.spec.as_mut().unwrap().disks[0].backing_file = escape.clone()
            }),
        ),
        (
            "symlink to /etc/shadow",
            Code::PermissionDenied,
            "backing_file",
            Box::new({
                let link = shadow_link.clone();
                move |r| r.spec.as_mut().unwrap().disks[0].backing_file = link.clone()
            }),
        ),
        (
            "disk path outside",
            Code::PermissionDenied,
            "path",
            disk0(|d| {
                d.backing_file.clear();
                d.path = "/etc/passwd".into();
            }),
        ),
        (
            "iso outside",
            Code::PermissionDenied,
            "iso_path",
            Box::new(|r| {
                r.spec.as_mut().unwrap().cdroms = vec![pb::CdromSpec {
                    iso_path: "/etc/hostname".into(),
                    ..Default::default()
                }];
            }),
        ),
        (
            "malformed cloud-config",
            Code::InvalidArgument,
            "spec.cloud_init.user_data",
            Box::new(|r| {
                r.spec.as_mut().unwrap().cloud_init = Some(pb::CloudInitConfig {
                    user_data: "#cloud-config\nusers:\n  - name: [unclosed\n".into(),
                    ..Default::default()
                });
            }),
        ),
        (
            "unknown disk bus",
            Code::InvalidArgument,
            "spec.disks[0].bus",
            disk0(|d| d.bus = 9),
        ),
        (
            "unknown firmware",
            Code::InvalidArgument,
            "spec.firmware",
            Box::new(|r| r.spec.as_mut().unwrap().firmware = 77),
        ),
        (
            "unknown boot device",
            Code::InvalidArgument,
            "spec.boot_order[0]",
            Box::new(|r| r.spec.as_mut().unwrap().boot_order = vec![5]),
        ),
        (
            "unknown nic model",
            Code::InvalidArgument,
            "spec.nics[0].model",
            Box::new(|r| r.spec.as_mut().unwrap().nics[0].model = -3),
        ),
    ];
    for (what, code, field, mutate) in &cases {
        let mut req = cloud_vm(ID, "web1", &image);
        mutate(&mut req);
        let err = client.create_vm(req).await.unwrap_err();
        assert_eq!(err.code(), *code, "{what}: {err:?}");
        assert!(err.message().contains(field), "{what}: {}", err.message());
        assert!(
            node.vm_dirs().is_empty(),
            "{what} left {:?}",
            node.vm_dirs()
        );
    }

    // 100 MiB of user-data: refused before it is even decoded (limit 16 MiB).
    let mut req = cloud_vm(ID, "web1", &image);
    req.spec.as_mut().unwrap().cloud_init = Some(pb::CloudInitConfig {
        user_data: format!("#cloud-config\n#{}\n", "x".repeat(100 << 20)),
        ..Default::default()
    });
    let err = client.create_vm(req).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("max_request_bytes"),
        "{}",
        err.message()
    );
    assert!(node.vm_dirs().is_empty());

    // The daemon is still fine, and nothing of those requests exists.
    let list = client.list_v_ms(()).await.unwrap().into_inner();
    assert!(list.vms.is_empty());
    assert!(
        !std::fs::read_dir(&node.images)
            .unwrap()
            .any(|e| { e.unwrap().file_name().to_string_lossy().contains("disk") })
    );
}

#[tokio::test]
async fn passwords_and_user_data_never_reach_the_log() {
    const PASSWORD: &str = "Pw-4f2a9c-NEVER-LOG-ME";
    const USER_DATA_SECRET: &str = "token-7d1e0b-NEVER-LOG-ME";
    let mut node = Node::new();
    let image = node.small_image("cloud.qcow2");
    node.start_with(&[("RUST_LOG", "trace")]);
    let mut client = node.client().await;

    let mut req = cloud_vm(ID, "web1", &image);
    req.spec.as_mut().unwrap().default_seed = Some(pb::DefaultSeedOptions {
        password: PASSWORD.into(),
        ..Default::default()
    });
    client.create_vm(req).await.unwrap();
    let other = "8b1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
    let mut req = cloud_vm(other, "web2", &image);
    req.spec.as_mut().unwrap().cloud_init = Some(pb::CloudInitConfig {
        user_data: format!(
            "#cloud-config\nwrite_files:\n  - path: /etc/token\n    content: {USER_DATA_SECRET}\n"
        ),
        ..Default::default()
    });
    client.create_vm(req.clone()).await.unwrap();
    // A refused request carrying the secret must not leak it through the error either.
    req.vm_id = "9c1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b".into();
    req.spec
        .as_mut()
        .unwrap()
        .cloud_init
        .as_mut()
        .unwrap()
        .user_data = format!("#cloud-config\nusers: [{USER_DATA_SECRET}\n");
    let err = client.create_vm(req).await.unwrap_err();
    assert!(
        !err.message().contains(USER_DATA_SECRET),
        "{}",
        err.message()
    );
    node.terminate();

    let log = node.log_text();
    assert!(
        log.contains(ID) && log.contains("VM defined"),
        "the log has the events:\n{log}"
    );
    assert!(!log.contains(PASSWORD), "the password is in the log");
    assert!(!log.contains(USER_DATA_SECRET), "user-data is in the log");
}

#[test]
fn config_file_env_and_flags_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(
        &file,
        "state_dir = \"/from/file\"\nrun_dir = \"/file/run\"\naccel = \"kvm\"\n\
         listen = [\"unix:/file/api.sock\"]\n[pools]\nimages2 = \"/file/pool\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_limiquantix-node"))
        .arg("--config")
        .arg(&file)
        .args(["--accel", "tcg", "--print-config"])
        .env("LQ_RUN_DIR", "/env/run")
        .env("LQ_ACCEL", "auto")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["state_dir"], "/from/file");
    assert_eq!(c["run_dir"], "/env/run");
    assert_eq!(c["accel"], "tcg");
    assert_eq!(c["listen"][0], "unix:/file/api.sock");
    assert_eq!(c["pools"]["images2"], "/file/pool");
    assert_eq!(c["images_dir"], "/from/file/images");

    let out = Command::new(env!("CARGO_BIN_EXE_limiquantix-node"))
        .args(["--listen", "tcp:127.0.0.1:7443", "--print-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only served with TLS"));
}
