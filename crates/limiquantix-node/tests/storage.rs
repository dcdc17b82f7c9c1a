//! Storage pools and volumes through the daemon binary, on real directories with the real
//! `qemu-img`: every volume RPC and its refusals (a volume id with `/`, growing beyond a
//! pool's cap or the free space, shrinking, deleting a VM's disk, destroying a busy pool, a
//! symlink out of a pool), CreateVM disks created in a pool as volumes named by the disk id,
//! ResizeVolume by disk id as the control plane sends it; a pool whose directory vanished
//! while the daemon was killed is reported with its VMs and comes back without a restart; NFS
//! pools adopt a mount of the right share (a tmpfs with the share's name stands in), refuse
//! another, and report the system's `mount` failing.

mod common;

use common::{Node, cloud_vm};
use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use std::path::{Path, PathBuf};
use std::process::Command;
use tonic::Code;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const VM: &str = "5d0c4c8e-2b7e-4d3a-9a51-1f0c2b9e7a10";
const DISK: &str = "9e3b1f7a-4c2d-4e8b-8f6a-0d1c2b3a4e5f";

async fn init_local(
    c: &mut NodeClient,
    id: &str,
    cap_gib: Option<u64>,
) -> Result<pb::StoragePoolInfoResponse, tonic::Status> {
    c.init_storage_pool(pb::InitStoragePoolRequest {
        pool_id: id.into(),
        r#type: pb::StoragePoolType::LocalDir as i32,
        config: Some(pb::StoragePoolConfig {
            local: Some(pb::LocalDirPoolConfig {
                path: String::new(),
                capacity_gib: cap_gib,
            }),
            ..Default::default()
        }),
    })
    .await
    .map(|r| r.into_inner())
}

async fn create(
    c: &mut NodeClient,
    pool: &str,
    id: &str,
    size: u64,
    kind: pb::VolumeSourceType,
    source: &str,
) -> Result<pb::VolumeInfoResponse, tonic::Status> {
    c.create_volume(pb::CreateVolumeRequest {
        pool_id: pool.into(),
        volume_id: id.into(),
        size_bytes: size,
        source_type: kind as i32,
        source_id: source.into(),
    })
    .await
    .map(|r| r.into_inner())
}

async fn volumes(c: &mut NodeClient, pool: &str) -> Vec<pb::VolumeInfoResponse> {
    c.list_volumes(pb::ListVolumesRequest {
        pool_id: pool.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .volumes
}

async fn volume(c: &mut NodeClient, pool: &str, id: &str) -> pb::VolumeInfoResponse {
    volumes(c, pool)
        .await
        .into_iter()
        .find(|v| v.volume_id == id)
        .unwrap_or_else(|| panic!("no volume {id}"))
}

async fn resize(c: &mut NodeClient, pool: &str, id: &str, size: u64) -> Result<(), tonic::Status> {
    c.resize_volume(pb::ResizeVolumeRequest {
        pool_id: pool.into(),
        volume_id: id.into(),
        new_size_bytes: size,
    })
    .await
    .map(|_| ())
}

async fn pool_info(c: &mut NodeClient, id: &str) -> pb::StoragePoolInfoResponse {
    c.get_storage_pool_info(pb::StoragePoolIdRequest { pool_id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

fn code<T: std::fmt::Debug>(r: Result<T, tonic::Status>, want: Code, words: &str) {
    let e = r.expect_err("refusal");
    assert_eq!(e.code(), want, "{}", e.message());
    assert!(
        e.message().contains(words),
        "{:?} lacks {words:?}",
        e.message()
    );
}

/// A CreateVM of a stopped VM whose disk (an overlay on `backing`) is created in pool `pool`
/// under the caller's disk id.
fn vm_in_pool(backing: &Path, pool: &str) -> pb::CreateVmOnNodeRequest {
    let mut req = cloud_vm(VM, "pooled", backing);
    let disk = &mut req.spec.as_mut().unwrap().disks[0];
    disk.id = DISK.into();
    disk.pool_id = pool.into();
    req
}

#[tokio::test]
async fn volumes_end_to_end_with_their_refusals() {
    let mut node = Node::new();
    node.start();
    let mut c = node.client().await;
    let image = node.small_image("base.qcow2");
    use pb::VolumeSourceType as S;

    // A capped pool; the same spec again is success, another is refused.
    let info = init_local(&mut c, "fast", Some(2)).await.unwrap();
    assert_eq!(
        (info.capacity_limit_bytes, info.total_bytes),
        (2 * GIB, 2 * GIB)
    );
    let dir = PathBuf::from(&info.mount_path);
    assert_eq!(dir, node.state.join("pools/fast"));
    init_local(&mut c, "fast", Some(2)).await.unwrap();
    code(
        init_local(&mut c, "fast", Some(3)).await,
        Code::FailedPrecondition,
        "already defined differently",
    );
    code(
        init_local(&mut c, "a/b", None).await,
        Code::InvalidArgument,
        "pool_id",
    );

    // Volumes: empty, and the refusals that write nothing.
    let v1 = create(&mut c, "fast", "v1", GIB, S::VolumeSourceEmpty, "")
        .await
        .unwrap();
    assert_eq!((v1.size_bytes, v1.format.as_str()), (GIB, "qcow2"));
    assert!(v1.allocated_bytes < 4 * MIB, "thin: {}", v1.allocated_bytes);
    code(
        create(&mut c, "fast", "../x", GIB, S::VolumeSourceEmpty, "").await,
        Code::InvalidArgument,
        "volume_id",
    );
    code(
        create(&mut c, "fast", "a/b", GIB, S::VolumeSourceEmpty, "").await,
        Code::InvalidArgument,
        "volume_id",
    );
    code(
        create(&mut c, "fast", "v1", GIB, S::VolumeSourceEmpty, "").await,
        Code::AlreadyExists,
        "v1.qcow2",
    );
    code(
        create(&mut c, "fast", "big", 3 * GIB / 2, S::VolumeSourceEmpty, "").await,
        Code::ResourceExhausted,
        "cap",
    );
    code(
        create(&mut c, "pool", "huge", 1 << 50, S::VolumeSourceEmpty, "").await,
        Code::ResourceExhausted,
        "free",
    );
    code(
        create(&mut c, "nope", "x", GIB, S::VolumeSourceEmpty, "").await,
        Code::NotFound,
        "not found",
    );
    assert!(!dir.join("big.qcow2").exists() && !node.pool.join("huge.qcow2").exists());

    // From an image (a thin overlay), snapshots, a copy of a snapshot, a clone.
    let v3 = create(&mut c, "fast", "v3", 0, S::VolumeSourceImage, "base.qcow2")
        .await
        .unwrap();
    assert_eq!(
        (v3.size_bytes, v3.backing_file.as_str()),
        (64 * MIB, image.to_str().unwrap())
    );
    code(
        create(&mut c, "fast", "v9", 0, S::VolumeSourceImage, "/etc/passwd").await,
        Code::PermissionDenied,
        "source_id",
    );
    c.create_volume_snapshot(pb::CreateVolumeSnapshotRequest {
        pool_id: "fast".into(),
        volume_id: "v3".into(),
        snapshot_id: "s1".into(),
    })
    .await
    .unwrap();
    assert_eq!(volume(&mut c, "fast", "v3").await.snapshot_ids, ["s1"]);
    let v4 = create(&mut c, "fast", "v4", 0, S::VolumeSourceSnapshot, "v3@s1")
        .await
        .unwrap();
    assert!(
        v4.backing_file.is_empty() && v4.size_bytes == 64 * MIB,
        "{v4:?}"
    );
    code(
        create(&mut c, "fast", "v8", 0, S::VolumeSourceSnapshot, "v3@nope").await,
        Code::NotFound,
        "nope",
    );
    c.clone_volume(pb::CloneVolumeRequest {
        pool_id: "fast".into(),
        source_volume_id: "v4".into(),
        dest_volume_id: "v5".into(),
    })
    .await
    .unwrap();
    assert_eq!(volume(&mut c, "fast", "v5").await.size_bytes, 64 * MIB);
    let raw = dir.join("r.img");
    assert!(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "raw"])
            .arg(&raw)
            .arg("1M")
            .status()
            .unwrap()
            .success()
    );
    code(
        c.create_volume_snapshot(pb::CreateVolumeSnapshotRequest {
            pool_id: "fast".into(),
            volume_id: "r".into(),
            snapshot_id: "s".into(),
        })
        .await,
        Code::FailedPrecondition,
        "raw",
    );

    // Grow only, within the cap.
    resize(&mut c, "fast", "v1", 3 * GIB / 2).await.unwrap();
    assert_eq!(volume(&mut c, "fast", "v1").await.size_bytes, 3 * GIB / 2);
    code(
        resize(&mut c, "fast", "v1", 2 * GIB).await,
        Code::ResourceExhausted,
        "cap",
    );
    code(
        resize(&mut c, "fast", "v1", GIB).await,
        Code::InvalidArgument,
        "only grow",
    );
    let info = pool_info(&mut c, "fast").await;
    assert_eq!(info.volume_count, 5);
    assert_eq!(info.provisioned_bytes, 3 * GIB / 2 + 3 * 64 * MIB + MIB);
    assert!(
        info.overcommit_ratio > 0.8 && info.allocated_bytes < info.provisioned_bytes,
        "{info:?}"
    );

    // The blockdev JSON of a volume.
    let attach = c
        .get_volume_attach_info(pb::VolumeIdRequest {
            pool_id: "fast".into(),
            volume_id: "v1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let json: serde_json::Value = serde_json::from_str(&attach.disk_xml).unwrap();
    assert_eq!(
        (json["driver"].as_str(), json["file"]["filename"].as_str()),
        (Some("qcow2"), Some(attach.path.as_str()))
    );

    // Listing stays in the pool.
    std::os::unix::fs::symlink("/etc", dir.join("escape")).unwrap();
    let files = c
        .list_storage_pool_files(pb::ListStoragePoolFilesRequest {
            pool_id: "fast".into(),
            path: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(files.entries.iter().all(|e| e.name != "escape"));
    assert!(
        files
            .entries
            .iter()
            .any(|e| e.name == "v1.qcow2" && e.file_type == "qcow2")
    );
    code(
        c.list_storage_pool_files(pb::ListStoragePoolFilesRequest {
            pool_id: "fast".into(),
            path: "escape".into(),
        })
        .await,
        Code::InvalidArgument,
        "path",
    );
    code(
        c.list_storage_pool_files(pb::ListStoragePoolFilesRequest {
            pool_id: "fast".into(),
            path: "../".into(),
        })
        .await,
        Code::InvalidArgument,
        "path",
    );

    vm_disks_are_volumes(&mut c, &node, &image, &dir).await;
}

/// CreateVM disks in a pool, a disk path that is a volume id, and the refusals they bring.
async fn vm_disks_are_volumes(c: &mut NodeClient, node: &Node, image: &Path, dir: &Path) {
    // A disk beyond the pool's cap: refused before anything is written.
    let mut big = vm_in_pool(image, "fast");
    big.spec.as_mut().unwrap().disks[0].size_gib = 1;
    code(c.create_vm(big).await, Code::ResourceExhausted, "cap");
    assert!(!dir.join(format!("{DISK}.qcow2")).exists() && node.vm_dirs().is_empty());
    c.create_vm(vm_in_pool(image, "fast")).await.unwrap();
    // A hot-plugged disk in the pool is held to the same cap, before anything is written.
    let before = std::fs::read_dir(dir).unwrap().count();
    let attach = pb::AttachDiskRequest {
        vm_id: VM.into(),
        disk: Some(pb::DiskSpec {
            id: "disk-1700000000123456789".into(),
            size_gib: 2,
            pool_id: "fast".into(),
            ..Default::default()
        }),
    };
    code(c.attach_disk(attach).await, Code::ResourceExhausted, "cap");
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), before);
    let disk = volume(c, "fast", DISK).await;
    assert_eq!(disk.attached_to, VM);
    assert_eq!(PathBuf::from(&disk.path), dir.join(format!("{DISK}.qcow2")));
    code(
        c.delete_volume(pb::VolumeIdRequest {
            pool_id: "fast".into(),
            volume_id: DISK.into(),
        })
        .await,
        Code::FailedPrecondition,
        VM,
    );
    code(
        c.destroy_storage_pool(pb::StoragePoolIdRequest {
            pool_id: "fast".into(),
        })
        .await,
        Code::FailedPrecondition,
        VM,
    );
    assert_eq!(pool_info(c, "fast").await.vm_ids, [VM]);
    // The control plane resizes by disk id, with pool "default".
    resize(c, "default", DISK, GIB / 4).await.unwrap();
    assert_eq!(volume(c, "fast", DISK).await.size_bytes, GIB / 4);

    // A disk whose path is a volume id uses that volume.
    let mut req = cloud_vm("7a1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f", "onvolume", image);
    let d = &mut req.spec.as_mut().unwrap().disks[0];
    d.backing_file.clear();
    d.path = "v5".into();
    d.pool_id = "fast".into();
    c.create_vm(req).await.unwrap();
    assert_eq!(
        volume(c, "fast", "v5").await.attached_to,
        "7a1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f"
    );
    let mut bad = cloud_vm("8b2f3e4d-5c6b-4a79-9887-6b5c4d3e2f10", "novolume", image);
    let d = &mut bad.spec.as_mut().unwrap().disks[0];
    d.backing_file.clear();
    d.path = "missing".into();
    code(
        c.create_vm(bad).await,
        Code::InvalidArgument,
        "spec.disks[0].path",
    );

    // Deleting the VMs frees the volumes: the created one goes with its VM, the given one stays.
    for vm in [VM, "7a1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f"] {
        c.delete_vm(pb::VmIdRequest { vm_id: vm.into() })
            .await
            .unwrap();
    }
    assert!(!dir.join(format!("{DISK}.qcow2")).exists());
    c.delete_volume(pb::VolumeIdRequest {
        pool_id: "fast".into(),
        volume_id: "v5".into(),
    })
    .await
    .unwrap();
    assert!(!dir.join("v5.qcow2").exists());
    c.destroy_storage_pool(pb::StoragePoolIdRequest {
        pool_id: "fast".into(),
    })
    .await
    .unwrap();
    assert!(
        dir.join("v1.qcow2").exists(),
        "a destroyed pool's volumes are kept"
    );
    let _ = node;
}

#[tokio::test]
async fn a_pool_whose_directory_vanished_is_reported_and_comes_back() {
    let mut node = Node::new();
    node.start();
    let mut c = node.client().await;
    let image = node.small_image("base.qcow2");
    let dir = PathBuf::from(init_local(&mut c, "fast", None).await.unwrap().mount_path);
    c.create_vm(vm_in_pool(&image, "fast")).await.unwrap();
    node.kill();

    let away = node.root.join("away");
    std::fs::rename(&dir, &away).unwrap();
    node.start();
    let mut c = node.client().await;
    let info = pool_info(&mut c, "fast").await;
    assert!(info.unavailable_reason.contains("missing"), "{info:?}");
    assert_eq!(info.vm_ids, [VM]);
    let listed = c.list_storage_pools(()).await.unwrap().into_inner().pools;
    assert!(
        listed
            .iter()
            .any(|p| p.pool_id == "fast" && !p.unavailable_reason.is_empty())
    );
    code(
        c.list_volumes(pb::ListVolumesRequest {
            pool_id: "fast".into(),
        })
        .await,
        Code::FailedPrecondition,
        "unavailable",
    );
    let vms = c.list_v_ms(()).await.unwrap().into_inner().vms;
    assert!(vms.iter().any(|v| v.vm_id == VM), "the VM is kept");

    std::fs::rename(&away, &dir).unwrap();
    let info = pool_info(&mut c, "fast").await;
    assert!(info.unavailable_reason.is_empty(), "{info:?}");
    assert_eq!(volume(&mut c, "fast", DISK).await.attached_to, VM);
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// Unmounts on drop.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

async fn init_nfs(
    c: &mut NodeClient,
    id: &str,
    server: &str,
    export: &str,
    mount_point: &Path,
) -> Result<pb::StoragePoolInfoResponse, tonic::Status> {
    c.init_storage_pool(pb::InitStoragePoolRequest {
        pool_id: id.into(),
        r#type: pb::StoragePoolType::Nfs as i32,
        config: Some(pb::StoragePoolConfig {
            nfs: Some(pb::NfsPoolConfig {
                server: server.into(),
                export_path: export.into(),
                version: "4.2".into(),
                options: "soft,timeo=100".into(),
                mount_point: mount_point.display().to_string(),
            }),
            ..Default::default()
        }),
    })
    .await
    .map(|r| r.into_inner())
}

#[tokio::test]
async fn nfs_pools_adopt_the_right_share_and_refuse_others() {
    if !is_root() {
        eprintln!("skipped: mounting needs root");
        return;
    }
    let mut node = Node::new();
    node.start();
    let mut c = node.client().await;
    let share = node.state.join("pools/share");
    std::fs::create_dir_all(&share).unwrap();
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=64m",
            "nfs.example.test:/srv/share",
        ])
        .arg(&share)
        .status()
        .unwrap();
    assert!(ok.success());
    let guard = Mounted(share.clone());

    let info = init_nfs(&mut c, "share", "nfs.example.test", "/srv/share", &share)
        .await
        .unwrap();
    assert_eq!(info.r#type, pb::StoragePoolType::Nfs as i32);
    assert_eq!(info.device_path, "nfs.example.test:/srv/share");
    assert!(
        !info.mounted_by_node && info.unavailable_reason.is_empty() && info.total_bytes == 64 * MIB,
        "{info:?}"
    );
    init_nfs(&mut c, "share", "nfs.example.test", "/srv/share", &share)
        .await
        .unwrap();
    create(
        &mut c,
        "share",
        "v1",
        16 * MIB,
        pb::VolumeSourceType::VolumeSourceEmpty,
        "",
    )
    .await
    .unwrap();
    assert!(share.join("v1.qcow2").exists());

    // Another export at that mount point is refused, and nothing changes.
    code(
        init_nfs(&mut c, "other", "nfs.example.test", "/srv/other", &share).await,
        Code::FailedPrecondition,
        "nfs.example.test:/srv/share",
    );
    // Nothing mounted and no such server: the system's mount fails, with its words.
    let fresh = node.state.join("pools/fresh");
    code(
        init_nfs(&mut c, "fresh", "nfs.example.invalid", "/export", &fresh).await,
        Code::FailedPrecondition,
        "mount -t nfs",
    );
    code(
        init_nfs(&mut c, "x", "bad host!", "/export", &fresh).await,
        Code::InvalidArgument,
        "config.nfs.server",
    );
    code(
        init_nfs(
            &mut c,
            "x",
            "nfs.example.test",
            "/srv/share",
            Path::new("/mnt/x"),
        )
        .await,
        Code::PermissionDenied,
        "config.nfs.mount_point",
    );
    let pools = c.list_storage_pools(()).await.unwrap().into_inner().pools;
    assert!(
        pools
            .iter()
            .all(|p| p.pool_id != "other" && p.pool_id != "fresh")
    );

    // The share goes away: unavailable; back: available. An adopted share is not unmounted.
    drop(guard);
    assert!(
        pool_info(&mut c, "share")
            .await
            .unavailable_reason
            .contains("not mounted")
    );
    assert!(
        Command::new("mount")
            .args(["-t", "tmpfs", "nfs.example.test:/srv/share"])
            .arg(&share)
            .status()
            .unwrap()
            .success()
    );
    let _guard = Mounted(share.clone());
    assert!(
        pool_info(&mut c, "share")
            .await
            .unavailable_reason
            .is_empty()
    );
    c.destroy_storage_pool(pb::StoragePoolIdRequest {
        pool_id: "share".into(),
    })
    .await
    .unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mountinfo.contains("nfs.example.test:/srv/share"),
        "an adopted share stays mounted"
    );
}

#[tokio::test]
async fn a_running_vms_volume_grows_live_and_is_not_copied_or_deleted() {
    let _one_guest = common::QEMU.lock().await;
    let mut node = Node::new();
    let image = node.tiny_image();
    node.start();
    let mut c = node.client().await;
    c.create_vm(vm_in_pool(&image, "pool")).await.unwrap();
    c.start_vm(pb::VmIdRequest { vm_id: VM.into() })
        .await
        .unwrap();
    let before = volume(&mut c, "pool", DISK).await.size_bytes;

    // As the control plane sends it: pool "default", the disk's id. QEMU grows the disk (its
    // qcow2 header says so at once) and the VM runs on.
    resize(&mut c, "default", DISK, before + 64 * MIB)
        .await
        .unwrap();
    assert_eq!(
        volume(&mut c, "pool", DISK).await.size_bytes,
        before + 64 * MIB
    );
    let status = c
        .get_vm_status(pb::VmIdRequest { vm_id: VM.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.state, pb::PowerState::Running as i32);
    code(
        resize(&mut c, "pool", DISK, before).await,
        Code::InvalidArgument,
        "new_size_bytes",
    );

    // A running VM's disk is not copied, snapshotted with qemu-img, or deleted.
    use pb::VolumeSourceType as S;
    code(
        create(&mut c, "pool", "copy", 0, S::VolumeSourceClone, DISK).await,
        Code::FailedPrecondition,
        "running",
    );
    code(
        c.create_volume_snapshot(pb::CreateVolumeSnapshotRequest {
            pool_id: "pool".into(),
            volume_id: DISK.into(),
            snapshot_id: "s".into(),
        })
        .await,
        Code::FailedPrecondition,
        "running",
    );
    code(
        c.delete_volume(pb::VolumeIdRequest {
            pool_id: "pool".into(),
            volume_id: DISK.into(),
        })
        .await,
        Code::FailedPrecondition,
        VM,
    );
    c.force_stop_vm(pb::VmIdRequest { vm_id: VM.into() })
        .await
        .unwrap();
    c.delete_vm(pb::VmIdRequest { vm_id: VM.into() })
        .await
        .unwrap();
}
