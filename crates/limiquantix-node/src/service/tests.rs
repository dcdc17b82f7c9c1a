//! Service-layer tests over an in-memory fake backend. (The integration tests in `tests/` drive
//! the real daemon binary with the real QEMU backend.)

use super::*;
use crate::config::{Config, Layer};
use limiquantix_vm::accel::AccelKind;
use limiquantix_vm::guest_ops as g;
use limiquantix_vm::model::{CdromRole, DiskSource, ValidDefinition, VmDefinition, VmId};
use limiquantix_vm::readiness::BootPhase;
use limiquantix_vm::resize;
use limiquantix_vm::{
    AgentPing, BackendError, ConsoleStream, GuestFacts, GuestNic, LogTail, VmEntry, VmEvent,
    VmEventKind, VmLogs, VmOp, VmState, VmStatus, VncEndpoint, valid_transition,
};
use limiquantix_vm::{hotplug, model as m};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_stream::StreamExt as _;
use tonic::Code;

mod events;
mod guest;
mod resize_volume;
mod snapshots;

/// A backend that keeps definitions in memory and moves states by the real state table
/// ([`valid_transition`]); a transition ends at once (`starting` → `running`, `stopping` →
/// `stopped`).
struct Fake {
    state_dir: PathBuf,
    vms: Mutex<BTreeMap<VmId, VmEntry>>,
    seeds: Mutex<BTreeMap<VmId, Vec<u8>>>,
    events: broadcast::Sender<VmEvent>,
    /// How many times the guest agent was asked about the guest.
    agent_queries: std::sync::atomic::AtomicUsize,
    /// The virtual size of each disk resized through the fake, by VM and disk id (a disk given
    /// by path starts at 0; the others at the size their definition records).
    disk_sizes: Mutex<BTreeMap<(VmId, String), u64>>,
    /// Each VM's snapshot tree (`tests/snapshots.rs`).
    snapshots: Mutex<BTreeMap<VmId, limiquantix_vm::snapshot::SnapshotTree>>,
    /// How many times the VMs were listed (`tests/resize_volume.rs`).
    lists: std::sync::atomic::AtomicUsize,
}

impl Fake {
    fn new(state_dir: PathBuf) -> Self {
        Self {
            state_dir,
            vms: Mutex::default(),
            seeds: Mutex::default(),
            events: broadcast::channel(16).0,
            agent_queries: Default::default(),
            disk_sizes: Mutex::default(),
            snapshots: Mutex::default(),
            lists: Default::default(),
        }
    }

    /// The fake's own directory for VM `id` (seed, logs).
    fn vm_dir(&self, id: &VmId) -> PathBuf {
        self.state_dir.join("vms").join(id.as_str())
    }

    fn serial_log(&self, id: &VmId) -> PathBuf {
        self.vm_dir(id).join("serial.log")
    }

    fn hypervisor_log(&self, id: &VmId) -> PathBuf {
        self.vm_dir(id).join("qemu.log")
    }

    /// Applies `op` by the state table.
    /// Applies `op`, then replaces the definition by what `f` makes of it (and whether the VM
    /// runs).
    fn edit(
        &self,
        id: &VmId,
        op: VmOp,
        f: impl FnOnce(&VmDefinition, bool) -> Result<VmDefinition, BackendError>,
    ) -> Result<VmDefinition, BackendError> {
        self.apply(id, op)?;
        let mut vms = self.vms.lock().unwrap();
        let e = vms.get_mut(id).expect("checked by apply");
        e.definition = f(&e.definition, e.status.state.is_active())?;
        Ok(e.definition.clone())
    }

    fn apply(&self, id: &VmId, op: VmOp) -> Result<(), BackendError> {
        let mut vms = self.vms.lock().unwrap();
        let e = vms.get_mut(id).ok_or_else(|| BackendError::not_found(id))?;
        let state = e.status.state;
        let to = valid_transition(state, op).ok_or_else(|| BackendError::InvalidTransition {
            vm_id: id.clone(),
            state,
            op,
        })?;
        let to = match to {
            VmState::Starting => VmState::Running,
            VmState::Stopping => VmState::Stopped,
            s => s,
        };
        e.status.state = to;
        e.status.boot = (to == VmState::Running).then_some(BootPhase::Ready);
        Ok(())
    }
}

/// The fake's answer to the migration methods.
const NO_MIGRATION: &str = "this fake backend cannot migrate VMs";

impl VmBackend for Fake {
    fn seed_path(&self, id: &VmId) -> PathBuf {
        self.vm_dir(id).join("cloud-init.iso")
    }
    async fn define(
        &self,
        d: ValidDefinition,
        seed: Option<Vec<u8>>,
    ) -> Result<VmDefinition, BackendError> {
        let d = d.into_inner();
        let mut vms = self.vms.lock().unwrap();
        if vms.contains_key(&d.id) {
            return Err(BackendError::AlreadyExists {
                vm_id: d.id.clone(),
            });
        }
        if let Some(s) = seed {
            self.seeds.lock().unwrap().insert(d.id.clone(), s);
        }
        vms.insert(
            d.id.clone(),
            VmEntry {
                definition: d.clone(),
                status: VmStatus {
                    state: VmState::Stopped,
                    pid: None,
                    started_at: None,
                    run_state: None,
                    last_exit: None,
                    boot: None,
                },
                disk_files: Vec::new(),
            },
        );
        Ok(d)
    }
    async fn get(&self, id: &VmId) -> Result<VmEntry, BackendError> {
        self.vms
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| BackendError::not_found(id))
    }
    async fn list(&self) -> Result<Vec<VmEntry>, BackendError> {
        self.lists
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.vms.lock().unwrap().values().cloned().collect())
    }
    async fn start(&self, id: &VmId) -> Result<(), BackendError> {
        self.apply(id, VmOp::Start)?;
        let _ = self
            .events
            .send(VmEvent::now(id.clone(), VmEventKind::Started));
        Ok(())
    }
    async fn stop(&self, id: &VmId, _: Duration) -> Result<(), BackendError> {
        self.apply(id, VmOp::Stop)
    }
    async fn force_stop(&self, id: &VmId) -> Result<(), BackendError> {
        self.apply(id, VmOp::ForceStop)
    }
    async fn reboot(&self, id: &VmId) -> Result<(), BackendError> {
        self.apply(id, VmOp::Reboot)
    }
    async fn pause(&self, id: &VmId) -> Result<(), BackendError> {
        self.apply(id, VmOp::Pause)
    }
    async fn resume(&self, id: &VmId) -> Result<(), BackendError> {
        self.apply(id, VmOp::Resume)
    }
    async fn delete(&self, id: &VmId) -> Result<(), BackendError> {
        self.apply(id, VmOp::Delete)?;
        self.vms.lock().unwrap().remove(id);
        Ok(())
    }
    async fn change_media(
        &self,
        id: &VmId,
        _: &str,
        _: Option<PathBuf>,
    ) -> Result<(), BackendError> {
        self.apply(id, VmOp::ChangeMedia)
    }
    async fn resize_disk(&self, id: &VmId, disk: &str, size: u64) -> Result<u64, BackendError> {
        self.apply(id, VmOp::ResizeDisk)?;
        let mut vms = self.vms.lock().unwrap();
        let def = &mut vms.get_mut(id).expect("checked by apply").definition;
        let (index, spec) = resize::resizable_disk(def, disk, size)?;
        let mut sizes = self.disk_sizes.lock().unwrap();
        let key = (id.clone(), disk.to_owned());
        let recorded = resize::recorded_size(spec).unwrap_or(0);
        let current = *sizes.get(&key).unwrap_or(&recorded);
        resize::check_grow(disk, current, size)?;
        sizes.insert(key, size);
        resize::record_size(def, index, size);
        Ok(current)
    }
    async fn create_snapshot(
        &self,
        id: &VmId,
        req: limiquantix_vm::SnapshotRequest,
    ) -> Result<limiquantix_vm::SnapshotInfo, BackendError> {
        snapshots::snap_create(self, id, req)
    }
    async fn list_snapshots(
        &self,
        id: &VmId,
    ) -> Result<Vec<limiquantix_vm::SnapshotInfo>, BackendError> {
        snapshots::snap_list(self, id)
    }
    async fn revert_snapshot(&self, id: &VmId, snap: &str, stop: bool) -> Result<(), BackendError> {
        snapshots::snap_revert(self, id, snap, stop)
    }
    async fn delete_snapshot(&self, id: &VmId, snap: &str) -> Result<(), BackendError> {
        snapshots::snap_delete(self, id, snap)
    }
    async fn guest_exec(
        &self,
        id: &VmId,
        e: g::GuestExec,
    ) -> Result<g::GuestExecResult, BackendError> {
        guest::exec(self, id, e).await
    }
    async fn guest_read_file(
        &self,
        id: &VmId,
        r: g::GuestFileRead,
    ) -> Result<g::GuestFileData, BackendError> {
        guest::running(self, id).await.map(|()| g::GuestFileData {
            total_size: r.offset,
            ..Default::default()
        })
    }
    async fn guest_write_file(&self, id: &VmId, w: g::GuestFileWrite) -> Result<u64, BackendError> {
        guest::running(self, id).await.map(|()| w.data.len() as u64)
    }
    async fn guest_shutdown(&self, id: &VmId, _: g::GuestShutdownMode) -> Result<(), BackendError> {
        guest::running(self, id).await
    }
    async fn guest_fsfreeze(
        &self,
        id: &VmId,
        _: g::FreezeRequest,
    ) -> Result<g::FreezeResult, BackendError> {
        guest::running(self, id).await.map(|()| g::FreezeResult {
            frozen: 2,
            token: "t".into(),
        })
    }
    async fn guest_fsthaw(&self, id: &VmId) -> Result<g::ThawResult, BackendError> {
        guest::running(self, id).await.map(|()| g::ThawResult {
            thawed: 2,
            frozen_for: None,
        })
    }
    async fn guest_set_time(
        &self,
        id: &VmId,
        t: Option<i64>,
    ) -> Result<g::TimeSyncResult, BackendError> {
        guest::running(self, id).await.map(|()| g::TimeSyncResult {
            set_to_ns: t.unwrap_or(1),
            ..Default::default()
        })
    }
    async fn attach_disk(
        &self,
        id: &VmId,
        disk: m::DiskSpec,
        p: hotplug::DiskPlacement,
    ) -> Result<VmDefinition, BackendError> {
        let (kind, device_id) = (hotplug::DeviceKind::Disk, disk.id.clone());
        let def = self.edit(id, VmOp::AttachDisk, |d, live| {
            hotplug::plan_attach_disk(d, disk, &p, live)
        })?;
        let kind = VmEventKind::DeviceAttached { kind, device_id };
        let _ = self.events.send(VmEvent::now(id.clone(), kind));
        Ok(def)
    }
    async fn detach_disk(&self, id: &VmId, disk: &str, _: bool) -> Result<(), BackendError> {
        self.edit(id, VmOp::DetachDisk, |d, _| {
            hotplug::detachable_disk(d, disk).map(|_| hotplug::without_device(d, disk))
        })?;
        let (kind, device_id) = (hotplug::DeviceKind::Disk, disk.to_string());
        let kind = VmEventKind::DeviceDetached { kind, device_id };
        let _ = self.events.send(VmEvent::now(id.clone(), kind));
        Ok(())
    }
    async fn attach_nic(
        &self,
        id: &VmId,
        nic: m::NicSpec,
        api_id: Option<String>,
    ) -> Result<m::NicSpec, BackendError> {
        let d = self.edit(id, VmOp::AttachNic, |d, _| {
            hotplug::plan_attach_nic(d, nic, api_id)
        })?;
        Ok(d.nics.last().cloned().expect("attached"))
    }
    async fn detach_nic(&self, id: &VmId, nic: &str) -> Result<(), BackendError> {
        self.edit(id, VmOp::DetachNic, |d, _| {
            hotplug::nic_index(d, nic).map(|_| hotplug::without_device(d, nic))
        })
        .map(drop)
    }
    async fn vnc(&self, id: &VmId) -> Result<Option<VncEndpoint>, BackendError> {
        let e = self.get(id).await?;
        Ok((e.status.state == VmState::Running).then(|| VncEndpoint {
            host: "127.0.0.1".into(),
            port: 5900,
        }))
    }
    async fn ping_agent(&self, id: &VmId) -> Result<AgentPing, BackendError> {
        let e = self.get(id).await?;
        let up = e.status.state == VmState::Running;
        Ok(AgentPing {
            connected: up,
            version: if up { "7.2.0".into() } else { String::new() },
            error: if up {
                String::new()
            } else {
                "not running".into()
            },
        })
    }
    async fn guest_facts(&self, id: &VmId) -> Result<GuestFacts, BackendError> {
        let e = self.get(id).await?;
        self.agent_queries
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if e.status.state != VmState::Running {
            return Err(BackendError::Precondition("not running".into()));
        }
        Ok(GuestFacts {
            agent_version: "7.2.0".into(),
            capabilities: vec!["guest-ping".into()],
            hostname: e.definition.name.clone(),
            os_name: "Debian GNU/Linux".into(),
            os_version: "12 (bookworm)".into(),
            kernel_release: "6.1.0-26-amd64".into(),
            usage: limiquantix_vm::GuestUsage {
                memory_total: 1 << 30,
                memory_available: 3 << 28,
                filesystems: vec![limiquantix_vm::GuestFilesystem {
                    mount_point: "/".into(),
                    device: "vda1".into(),
                    fstype: "ext4".into(),
                    total_bytes: 2 << 30,
                    used_bytes: 1 << 30,
                }],
                ..Default::default()
            },
            interfaces: vec![
                GuestNic {
                    name: "lo".into(),
                    mac: "00:00:00:00:00:00".into(),
                    addresses: vec![("127.0.0.1".parse().unwrap(), 8)],
                },
                GuestNic {
                    name: "eth0".into(),
                    mac: "52:54:00:12:34:56".into(),
                    addresses: vec![
                        ("10.0.2.15".parse().unwrap(), 24),
                        ("fe80::5054:ff:fe12:3456".parse().unwrap(), 64),
                    ],
                },
            ],
        })
    }
    async fn logs(&self, id: &VmId, lines: usize, _: u64) -> Result<VmLogs, BackendError> {
        self.get(id).await?;
        // The last `lines` lines of a whole file (the real backend reads backwards, bounded).
        let read = |path: PathBuf| {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let kept = &all[all.len().saturating_sub(lines)..];
            LogTail {
                text: kept.iter().map(|l| format!("{l}\n")).collect(),
                lines: kept.len() as u32,
                truncated: kept.len() < all.len(),
                size: text.len() as u64,
                modified: std::fs::metadata(&path).and_then(|m| m.modified()).ok(),
                path,
            }
        };
        Ok(VmLogs {
            hypervisor: read(self.hypervisor_log(id)),
            serial: read(self.serial_log(id)),
        })
    }
    async fn open_console(&self, id: &VmId) -> Result<ConsoleStream, BackendError> {
        self.get(id).await?;
        Err(BackendError::Precondition("the fake has no console".into()))
    }
    async fn console_history(&self, id: &VmId, _: usize) -> Result<Vec<u8>, BackendError> {
        self.get(id).await?;
        Ok(Vec::new())
    }
    async fn prepare_incoming(
        &self,
        _: ValidDefinition,
        _: Option<Vec<u8>>,
        _: bool,
        _: limiquantix_vm::migration::IncomingNet,
    ) -> Result<limiquantix_vm::migration::IncomingEndpoint, BackendError> {
        Err(BackendError::Precondition(NO_MIGRATION.into()))
    }

    async fn finish_incoming(&self, _: &VmId, _: Duration) -> Result<(), BackendError> {
        Err(BackendError::Precondition(NO_MIGRATION.into()))
    }

    async fn abort_incoming(&self, _: &VmId) -> Result<(), BackendError> {
        Err(BackendError::Precondition(NO_MIGRATION.into()))
    }

    async fn migrate(
        &self,
        _: &VmId,
        _: limiquantix_vm::migration::MigrationParams,
        _: limiquantix_vm::migration::ProgressSender,
    ) -> Result<limiquantix_vm::migration::MigrationProgress, BackendError> {
        Err(BackendError::Precondition(NO_MIGRATION.into()))
    }

    async fn complete_outgoing(&self, _: &VmId, _: &str) -> Result<(), BackendError> {
        Err(BackendError::Precondition(NO_MIGRATION.into()))
    }

    async fn cancel_outgoing(&self, _: &VmId) -> Result<(), BackendError> {
        Err(BackendError::Precondition(NO_MIGRATION.into()))
    }

    fn subscribe(&self) -> broadcast::Receiver<VmEvent> {
        self.events.subscribe()
    }
}

struct Setup {
    dir: tempfile::TempDir,
    service: NodeService<Fake>,
    images: PathBuf,
}

const ID: &str = "0d6b5c3e-8f1a-4c2b-9e7d-1a2b3c4d5e6f";

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let state = root.join("state");
    let layer = Layer {
        state_dir: Some(state.clone()),
        run_dir: Some(root.join("run")),
        ..Layer::default()
    };
    let config = Config::resolve(&[("flag", layer)]).unwrap();
    let images = config.images_dir.clone();
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(images.join("cloud.img"), vec![0u8; 1 << 20]).unwrap();
    let service = NodeService::new(
        Arc::new(Fake::new(state)),
        config,
        Hypervisor {
            qemu_version: Some("7.2.0".into()),
            accel: AccelKind::Tcg,
            accel_reason: "configured (accel tcg)".into(),
            probe_millis: None,
        },
    );
    Setup {
        dir,
        service,
        images,
    }
}

fn request(s: &Setup) -> pb::CreateVmOnNodeRequest {
    pb::CreateVmOnNodeRequest {
        vm_id: ID.into(),
        name: "web1".into(),
        spec: Some(pb::VmSpec {
            cpu_cores: 2,
            memory_mib: 512,
            disks: vec![pb::DiskSpec {
                backing_file: s.images.join("cloud.img").display().to_string(),
                size_gib: 1,
                ..Default::default()
            }],
            nics: vec![pb::NicSpec::default()],
            ..Default::default()
        }),
        labels: BTreeMap::from([("team".to_string(), "web".to_string())]),
    }
}

async fn create(
    s: &Setup,
    r: pb::CreateVmOnNodeRequest,
) -> Result<pb::CreateVmOnNodeResponse, Status> {
    s.service
        .create_vm(Request::new(r))
        .await
        .map(Response::into_inner)
}

fn vm_id() -> VmId {
    VmId::parse(ID).unwrap()
}

#[tokio::test]
async fn create_defines_an_overlay_with_the_default_seed_and_labels() {
    let s = setup();
    let r = create(&s, request(&s)).await.unwrap();
    assert!(r.created);
    assert_eq!(r.vm_id, ID);
    let def = s.service.backend().get(&vm_id()).await.unwrap().definition;
    assert!(
        matches!(def.disks[0].source, DiskSource::Overlay { size_bytes, .. } if size_bytes == 1 << 30)
    );
    let seed = def
        .cdroms
        .iter()
        .find(|c| c.role == CdromRole::Seed)
        .unwrap();
    assert_eq!(
        seed.path.as_deref(),
        Some(s.service.backend().seed_path(&vm_id()).as_path())
    );
    assert!(def.spec_digest.as_deref().unwrap().starts_with("sha256:"));
    let iso = s.service.backend().seeds.lock().unwrap()[&vm_id()].clone();
    assert_eq!(&iso[0x8001..0x8006], b"CD001");

    let status = s
        .service
        .get_vm_status(Request::new(pb::VmIdRequest { vm_id: ID.into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.labels["team"], "web");
    assert_eq!(status.state, pb::PowerState::Stopped as i32);
    assert_eq!(status.disks[0].size_gib, 1);
}

#[tokio::test]
async fn ping_agent_reports_the_agent_or_why_it_cannot_answer() {
    let s = setup();
    create(&s, request(&s)).await.unwrap();
    let stopped = s
        .service
        .ping_agent(Request::new(pb::VmIdRequest { vm_id: ID.into() }))
        .await
        .unwrap()
        .into_inner();
    assert!(!stopped.connected);
    assert!(!stopped.error.is_empty());
    let bad = s
        .service
        .ping_agent(Request::new(pb::VmIdRequest {
            vm_id: "../../etc".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
}

#[tokio::test]
async fn create_is_idempotent_per_spec() {
    let s = setup();
    assert!(create(&s, request(&s)).await.unwrap().created);
    let again = create(&s, request(&s)).await.unwrap();
    assert!(!again.created);
    let mut other = request(&s);
    other.labels.insert("x".into(), "y".into());
    let err = create(&s, other).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
}

#[tokio::test]
async fn a_blank_disk_vm_gets_no_seed_and_custom_documents_are_used() {
    let s = setup();
    let mut r = request(&s);
    r.spec.as_mut().unwrap().disks = vec![pb::DiskSpec {
        size_gib: 2,
        ..Default::default()
    }];
    create(&s, r).await.unwrap();
    let def = s.service.backend().get(&vm_id()).await.unwrap().definition;
    assert!(def.cdroms.is_empty());
    assert!(s.service.backend().seeds.lock().unwrap().is_empty());

    let s = setup();
    let mut r = request(&s);
    r.spec.as_mut().unwrap().disks[0].backing_file.clear();
    r.spec.as_mut().unwrap().disks[0].size_gib = 1;
    r.spec.as_mut().unwrap().cloud_init = Some(pb::CloudInitConfig {
        user_data: "#cloud-config\nruncmd: [[touch, /marker]]\n".into(),
        ..Default::default()
    });
    create(&s, r).await.unwrap();
    assert!(
        s.service
            .backend()
            .seeds
            .lock()
            .unwrap()
            .contains_key(&vm_id())
    );
}

#[tokio::test]
async fn hostile_requests_are_refused_with_the_right_code_and_define_nothing() {
    let s = setup();
    let outside = s.dir.path().join("outside.img");
    std::fs::write(&outside, b"x").unwrap();
    std::os::unix::fs::symlink(&outside, s.images.join("escape.img")).unwrap();
    type Mutation = Box<dyn Fn(&mut pb::CreateVmOnNodeRequest)>;
    let cases: Vec<(Code, &str, Mutation)> = vec![
        (
            Code::InvalidArgument,
            "vm_id",
            Box::new(|r| r.vm_id = "../../etc".into()),
        ),
        (
            Code::InvalidArgument,
            "name",
            Box::new(|r| r.name = "a\nb".into()),
        ),
        (
            Code::InvalidArgument,
            "name",
            Box::new(|r| r.name = "a,b".into()),
        ),
        (
            Code::InvalidArgument,
            "name",
            Box::new(|r| r.name = "a\"b".into()),
        ),
        (
            Code::PermissionDenied,
            "spec.disks[0].backing_file",
            Box::new(|r| r.spec.as_mut().unwrap().disks[0].backing_file = "/etc/shadow".into()),
        ),
        (
            Code::InvalidArgument,
            "spec.disks[0].bus",
            Box::new(|r| r.spec.as_mut().unwrap().disks[0].bus = 42),
        ),
        (
            Code::InvalidArgument,
            "spec.firmware",
            Box::new(|r| r.spec.as_mut().unwrap().firmware = -1),
        ),
        (
            Code::InvalidArgument,
            "spec.memory_mib",
            Box::new(|r| r.spec.as_mut().unwrap().memory_mib = 0),
        ),
        (
            Code::InvalidArgument,
            "spec.cloud_init.user_data",
            Box::new(|r| {
                r.spec.as_mut().unwrap().cloud_init = Some(pb::CloudInitConfig {
                    user_data: "#cloud-config\nusers: [\n".into(),
                    ..Default::default()
                })
            }),
        ),
    ];
    for (code, field, mutate) in cases {
        let mut r = request(&s);
        mutate(&mut r);
        let err = create(&s, r).await.unwrap_err();
        assert_eq!(err.code(), code, "{field}: {err:?}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    let mut r = request(&s);
    r.spec.as_mut().unwrap().disks[0].backing_file =
        s.images.join("escape.img").display().to_string();
    assert_eq!(
        create(&s, r).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert!(s.service.backend().vms.lock().unwrap().is_empty());
}

#[tokio::test]
async fn lifecycle_codes_and_events() {
    let s = setup();
    let mut events = s
        .service
        .stream_events(Request::new(()))
        .await
        .unwrap()
        .into_inner();
    create(&s, request(&s)).await.unwrap();
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.r#type, pb::EventType::VmCreated as i32);
    assert_eq!(first.vm_id, ID);

    let id = || Request::new(pb::VmIdRequest { vm_id: ID.into() });
    let err = s.service.pause_vm(id()).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = s.service.get_console(id()).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    s.service.start_vm(id()).await.unwrap();
    let started = events.next().await.unwrap().unwrap();
    assert_eq!(started.r#type, pb::EventType::VmStarted as i32);
    let console = s.service.get_console(id()).await.unwrap().into_inner();
    assert_eq!((console.r#type.as_str(), console.port), ("vnc", 5900));
    s.service
        .stop_vm(Request::new(pb::StopVmRequest {
            vm_id: ID.into(),
            timeout_seconds: 1,
        }))
        .await
        .unwrap();
    s.service.start_vm(id()).await.unwrap();
    let started = events.next().await.unwrap().unwrap();
    assert_eq!(started.r#type, pb::EventType::VmStarted as i32);
    // A running VM is forced off and deleted.
    s.service.delete_vm(id()).await.unwrap();
    let deleted = events.next().await.unwrap().unwrap();
    assert_eq!(deleted.r#type, pb::EventType::VmDeleted as i32);
    assert_eq!(
        s.service.get_vm_status(id()).await.unwrap_err().code(),
        Code::NotFound
    );
    let bad = Request::new(pb::VmIdRequest {
        vm_id: "nope".into(),
    });
    assert_eq!(
        s.service.start_vm(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

#[tokio::test]
async fn shutdown_ends_event_streams() {
    let s = setup();
    let mut events = s
        .service
        .stream_events(Request::new(()))
        .await
        .unwrap()
        .into_inner();
    s.service.shutdown_switch().send(true).unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap();
    assert!(end.is_none());
}

#[tokio::test]
async fn unimplemented_rpcs_say_what_they_wait_for() {
    // Every RPC is implemented today; the answer stays ready for the next one.
    assert!(pending::PENDING.is_empty());
    let err = pending::answer::<()>("SomeRpc").unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("SomeRpc"), "{}", err.message());
}

#[tokio::test]
async fn node_facts_and_health() {
    let s = setup();
    let h = s
        .service
        .health_check(Request::new(pb::HealthCheckRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(h.healthy);
    assert_eq!(h.hypervisor_version, "7.2.0");
    let accel = h.accelerator.unwrap();
    assert_eq!(
        (accel.accelerator.as_str(), accel.reason.as_str()),
        ("tcg", "configured (accel tcg)")
    );
    let info = s
        .service
        .get_node_info(Request::new(()))
        .await
        .unwrap()
        .into_inner();
    assert!(info.cpu.unwrap().total_threads >= 1);
    assert!(info.memory.unwrap().total_bytes > 0);
    assert!(!info.kernel_version.is_empty());
    assert_eq!(info.accelerator.unwrap().accelerator, "tcg");
}

#[tokio::test]
async fn logs_are_tailed_from_both_files() {
    let s = setup();
    create(&s, request(&s)).await.unwrap();
    let fake = s.service.backend();
    std::fs::create_dir_all(fake.vm_dir(&vm_id())).unwrap();
    let serial: String = (0..300).map(|i| format!("serial {i}\n")).collect();
    std::fs::write(fake.serial_log(&vm_id()), serial).unwrap();
    std::fs::write(fake.hypervisor_log(&vm_id()), "qemu says hi\n").unwrap();
    let logs = s
        .service
        .get_vm_logs(Request::new(pb::GetVmLogsRequest {
            vm_id: ID.into(),
            lines: 0,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(logs.serial_lines_returned, 100);
    assert!(logs.serial_truncated);
    assert!(logs.serial_log.ends_with("serial 299\n"));
    assert_eq!(logs.qemu_log, "qemu says hi\n");
    assert_eq!(logs.vm_name, "web1");
    assert!(!logs.last_modified.is_empty());
}

#[tokio::test]
async fn status_reports_boot_phase_vcpus_and_the_agent_cached() {
    let s = setup();
    let mut events = s
        .service
        .stream_events(Request::new(()))
        .await
        .unwrap()
        .into_inner();
    create(&s, request(&s)).await.unwrap();
    let id = || Request::new(pb::VmIdRequest { vm_id: ID.into() });
    let queries = || {
        s.service
            .backend()
            .agent_queries
            .load(std::sync::atomic::Ordering::SeqCst)
    };

    // Stopped: no boot phase, no agent, but the vCPUs are known.
    let stopped = s.service.get_vm_status(id()).await.unwrap().into_inner();
    assert_eq!(stopped.vcpus, 2);
    assert_eq!(stopped.boot, None);
    assert_eq!(stopped.guest_agent, None);
    assert_eq!(queries(), 0, "a stopped VM's agent is not asked");

    s.service.start_vm(id()).await.unwrap();
    let running = s.service.get_vm_status(id()).await.unwrap().into_inner();
    let boot = running.boot.unwrap();
    assert_eq!(boot.phase(), pb::BootPhase::Ready);
    assert_eq!(boot.description, "ready");
    let agent = running.guest_agent.unwrap();
    assert!(agent.connected);
    assert_eq!(agent.hostname, "web1");
    assert_eq!(agent.os_name, "Debian GNU/Linux");
    assert_eq!(agent.kernel_version, "6.1.0-26-amd64");
    assert_eq!(agent.ip_addresses, ["10.0.2.15"]);
    assert_eq!(agent.interfaces.len(), 2);
    assert!(agent.last_seen.is_some());
    let usage = agent.resource_usage.clone().unwrap();
    assert_eq!(
        (usage.memory_total_bytes, usage.memory_used_bytes),
        (1 << 30, 1 << 28)
    );
    assert_eq!(usage.disks[0].mount_point, "/");
    assert_eq!(usage.disks[0].usage_percent, 50.0);
    assert_eq!(queries(), 1);

    // Within the freshness window both calls answer from the cache.
    let again = s.service.get_vm_status(id()).await.unwrap().into_inner();
    assert_eq!(again.guest_agent.unwrap().hostname, "web1");
    let list = s
        .service
        .list_v_ms(Request::new(()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        list.vms[0].guest_agent.as_ref().unwrap().ip_addresses,
        ["10.0.2.15"]
    );
    assert_eq!(list.vms[0].vcpus, 2);
    assert_eq!(queries(), 1);

    // The first answer is announced.
    let mut kinds = Vec::new();
    while let Ok(Some(Ok(e))) =
        tokio::time::timeout(Duration::from_millis(200), events.next()).await
    {
        kinds.push(e.r#type);
    }
    assert!(
        kinds.contains(&(pb::EventType::AgentConnected as i32)),
        "{kinds:?}"
    );

    // Stopped again: nothing from the agent.
    s.service
        .stop_vm(Request::new(pb::StopVmRequest {
            vm_id: ID.into(),
            timeout_seconds: 1,
        }))
        .await
        .unwrap();
    let stopped = s.service.get_vm_status(id()).await.unwrap().into_inner();
    assert_eq!((stopped.boot, stopped.guest_agent), (None, None));
}

#[tokio::test]
async fn pools_made_through_the_api_can_be_destroyed() {
    let s = setup();
    let init = pb::InitStoragePoolRequest {
        pool_id: "p1".into(),
        r#type: pb::StoragePoolType::LocalDir as i32,
        config: None,
    };
    let info = s
        .service
        .init_storage_pool(Request::new(init))
        .await
        .unwrap()
        .into_inner();
    let dir = std::path::PathBuf::from(&info.mount_path);
    assert!(dir.is_dir());
    let listed = s
        .service
        .list_storage_pools(Request::new(()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.pools.len(), 1);
    let id = |p: &str| Request::new(pb::StoragePoolIdRequest { pool_id: p.into() });
    s.service.destroy_storage_pool(id("p1")).await.unwrap();
    assert!(!dir.exists(), "an empty pool directory goes with the pool");
    let e = s.service.destroy_storage_pool(id("p1")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("not found"), "{}", e.message());
    // An NFS pool without a server names the field; Ceph is not something this node has.
    let nfs = pb::InitStoragePoolRequest {
        pool_id: "n1".into(),
        r#type: pb::StoragePoolType::Nfs as i32,
        config: None,
    };
    let e = s
        .service
        .init_storage_pool(Request::new(nfs))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("config.nfs.server"), "{}", e.message());
    let ceph = pb::InitStoragePoolRequest {
        pool_id: "c1".into(),
        r#type: pb::StoragePoolType::CephRbd as i32,
        config: None,
    };
    let e = s
        .service
        .init_storage_pool(Request::new(ceph))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("CEPH_RBD"), "{}", e.message());
}

#[path = "tests_hotplug.rs"]
mod hotplug_tests;

#[path = "tests_migration.rs"]
mod migration;
