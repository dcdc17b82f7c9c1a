//! The argv builder's output is accepted by a real `qemu-system-x86_64` (7.2 or newer):
//! QEMU is started paused (`-S`) under TCG, answers QMP, shows the expected block devices,
//! and is told to quit.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::accel_kind;
use limiquantix_qemu::argv::{HostConfig, QemuCommand, ResolvedFirmware};
use limiquantix_qemu::paths::RuntimePaths;
use limiquantix_vm::model::{
    CdromRole, CdromSpec, DiskBus, DiskFormat, DiskSource, DiskSpec, Firmware, IoLimits,
    MachineType, NicModel, NicNetwork, NicSpec, PortForward, Protocol, VmDefinition, VmId,
};
use serde_json::{Value, json};

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img").args(args).output().unwrap();
    assert!(out.status.success(), "qemu-img {args:?}: {out:?}");
}

/// A VM with an image disk at `disk`, a seed ISO and a NIC.
fn definition(disk: &Path, seed: &Path) -> VmDefinition {
    let mut def = VmDefinition::new(VmId::generate(), "argv-test", 64);
    def.disks.push(DiskSpec {
        id: "disk0".into(),
        source: DiskSource::Path { path: disk.into() },
        bus: Default::default(),
        format: Default::default(),
        readonly: false,
        boot_index: None,
        limits: None,
    });
    def.cdroms.push(CdromSpec {
        id: "seed".into(),
        path: Some(seed.into()),
        bootable: false,
        role: CdromRole::Seed,
        boot_index: None,
    });
    def.nics.push(NicSpec {
        id: "net0".into(),
        mac: None,
        model: Default::default(),
        network: Default::default(),
    });
    def
}

struct Qemu {
    child: Child,
    qmp: BufReader<UnixStream>,
}

impl Qemu {
    fn start(cmd: &QemuCommand, qmp: &Path) -> Self {
        let mut child = Command::new("qemu-system-x86_64")
            .args(cmd.args())
            .arg("-S")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-x86_64 must be installed (scripts/install-deps.sh)");
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "QEMU refused the command line ({status}): {}\nargs: {:?}",
                    String::from_utf8_lossy(&out.stderr),
                    cmd.args()
                );
            }
            if let Ok(s) = UnixStream::connect(qmp) {
                break s;
            }
            assert!(Instant::now() < deadline, "no QMP socket at {qmp:?}");
            std::thread::sleep(Duration::from_millis(50));
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut q = Self {
            child,
            qmp: BufReader::new(stream),
        };
        let greeting = q.read();
        assert!(greeting.get("QMP").is_some(), "{greeting}");
        q.call("qmp_capabilities", json!({}));
        q
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.qmp.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }

    fn call(&mut self, cmd: &str, args: Value) -> Value {
        let msg = json!({ "execute": cmd, "arguments": args }).to_string() + "\n";
        self.qmp.get_mut().write_all(msg.as_bytes()).unwrap();
        loop {
            let v = self.read();
            if v.get("event").is_none() {
                assert!(v.get("error").is_none(), "{cmd}: {v}");
                return v["return"].clone();
            }
        }
    }

    fn quit(mut self) {
        self.call("quit", json!({}));
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

fn block_devices(q: &mut Qemu) -> Vec<(String, Option<String>)> {
    let blocks = q.call("query-block", json!({}));
    blocks
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["qdev"].as_str().unwrap_or_default().to_owned(),
                b["inserted"]["file"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn setup(dir: &Path, disk_name: &str) -> (PathBuf, PathBuf) {
    let disk = dir.join(disk_name);
    qemu_img(&["create", "-q", "-f", "qcow2", disk.to_str().unwrap(), "32M"]);
    let seed = dir.join("seed.iso");
    std::fs::write(&seed, vec![0u8; 64 * 1024]).unwrap();
    (disk, seed)
}

#[test]
fn bios_argv_is_accepted_by_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, seed) = setup(dir.path(), "disk.qcow2");
    let def = definition(&disk, &seed);
    let paths = RuntimePaths::new(dir.path(), dir.path(), &def.id);
    std::fs::create_dir_all(&paths.vm_dir).unwrap();
    let cmd = QemuCommand::build(
        &def,
        &paths,
        &HostConfig::new(accel_kind()),
        &ResolvedFirmware::Bios,
    )
    .unwrap();
    let mut q = Qemu::start(&cmd, &paths.qmp_socket());
    let devs = block_devices(&mut q);
    assert!(
        devs.iter()
            .any(|(d, f)| d.contains("disk0") && f.as_deref() == disk.to_str()),
        "{devs:?}"
    );
    assert!(
        devs.iter()
            .any(|(d, f)| d.contains("seed") && f.as_deref() == seed.to_str()),
        "{devs:?}"
    );
    // The NIC has no option ROM.
    let rom = q.call(
        "qom-get",
        json!({ "path": "/machine/peripheral/net0", "property": "romfile" }),
    );
    assert_eq!(rom, "");
    assert!(paths.serial_log().exists());
    assert!(paths.qga_socket().exists());
    assert!(paths.serial_socket().exists());
    q.quit();
}

/// The less common shapes: throttle groups, a read-only raw SCSI disk, an empty CD-ROM drive,
/// e1000 with a port forward, huge-page-style file-backed memory, q35 and pc.
#[test]
fn option_shapes_are_accepted_by_qemu() {
    for machine in [MachineType::Q35, MachineType::Pc] {
        let dir = tempfile::tempdir().unwrap();
        let (disk, seed) = setup(dir.path(), "disk.qcow2");
        let mut def = definition(&disk, &seed);
        def.machine = Some(machine);
        def.memory.hugepages = true;
        def.disks[0].limits = Some(IoLimits {
            iops_total: Some(1000),
            bps_read: Some(50 << 20),
            ..IoLimits::default()
        });
        let raw = dir.path().join("data.img");
        std::fs::write(&raw, vec![0u8; 1 << 20]).unwrap();
        def.disks.push(DiskSpec {
            id: "data".into(),
            source: DiskSource::Path { path: raw },
            bus: DiskBus::Scsi,
            format: DiskFormat::Raw,
            readonly: true,
            boot_index: None,
            limits: None,
        });
        def.cdroms.push(CdromSpec {
            id: "cd0".into(),
            path: None,
            bootable: true,
            role: CdromRole::Media,
            boot_index: None,
        });
        def.nics[0].model = NicModel::E1000;
        def.nics[0].network = NicNetwork::User {
            port_forwards: vec![PortForward {
                protocol: Protocol::Tcp,
                host_addr: std::net::Ipv4Addr::LOCALHOST,
                host_port: 20000 + (std::process::id() % 20000) as u16,
                guest_port: 22,
            }],
        };
        let paths = RuntimePaths::new(dir.path(), dir.path(), &def.id);
        std::fs::create_dir_all(&paths.vm_dir).unwrap();
        let mut host = HostConfig::new(accel_kind());
        host.hugepages_dir = dir.path().to_owned();
        let cmd = QemuCommand::build(&def, &paths, &host, &ResolvedFirmware::Bios).unwrap();
        let mut q = Qemu::start(&cmd, &paths.qmp_socket());
        let devs = block_devices(&mut q);
        assert!(
            devs.iter().any(|(d, f)| d.contains("cd0") && f.is_none()),
            "{devs:?}"
        );
        assert!(devs.iter().any(|(d, _)| d.contains("data")), "{devs:?}");
        let tg = q.call(
            "qom-get",
            json!({ "path": "/objects/disk0-tg", "property": "limits" }),
        );
        assert_eq!(tg["iops-total"], 1000, "{tg}");
        assert_eq!(tg["bps-read"], 50 << 20, "{tg}");
        q.quit();
    }
}

#[test]
fn uefi_argv_with_hostile_paths_is_accepted_by_qemu() {
    let code = Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd");
    let vars_template = Path::new("/usr/share/OVMF/OVMF_VARS_4M.fd");
    let dir = tempfile::tempdir().unwrap();
    // Commas, quotes, '=' and spaces in every path QEMU sees.
    let base = dir.path().join("a,b=\"c d'");
    std::fs::create_dir(&base).unwrap();
    let (disk, seed) = setup(&base, "disk,file.filename=x.qcow2");
    let mut def = definition(&disk, &seed);
    def.firmware = Firmware::Uefi;
    let paths = RuntimePaths::new(&base, &base, &def.id);
    std::fs::create_dir_all(&paths.vm_dir).unwrap();
    std::fs::copy(vars_template, paths.uefi_vars()).unwrap();
    let fw = ResolvedFirmware::Uefi {
        code: code.into(),
        vars: paths.uefi_vars(),
    };
    let cmd = QemuCommand::build(&def, &paths, &HostConfig::new(accel_kind()), &fw).unwrap();
    let mut q = Qemu::start(&cmd, &paths.qmp_socket());
    let devs = block_devices(&mut q);
    assert!(
        devs.iter().any(|(_, f)| f.as_deref() == disk.to_str()),
        "{devs:?}"
    );
    let named = q.call("query-named-block-nodes", json!({ "flat": true }));
    let code_node = named
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node-name"] == "fw-code")
        .unwrap();
    assert_eq!(code_node["ro"], true);
    assert!(paths.serial_log().exists(), "serial log at the comma path");
    q.quit();
    assert!(
        !paths.pidfile().exists(),
        "QEMU removes its pidfile on exit"
    );
}
