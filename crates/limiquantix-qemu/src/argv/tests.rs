use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::command::QemuCommand;
use super::common::MAX_SOCKET_PATH;
use super::types::{BootError, HostConfig, ResolvedFirmware};
use crate::paths::RuntimePaths;
use limiquantix_vm::accel::AccelKind;
use limiquantix_vm::model::fixtures::{ID, cloud_vm};
use limiquantix_vm::model::{
    CdromRole, CdromSpec, DiskBus, DiskFormat, DiskSource, DiskSpec, Firmware, GuestOs, IoLimits,
    NicNetwork, VmDefinition,
};

fn paths() -> RuntimePaths {
    RuntimePaths::new(
        Path::new("/var/lib/limiquantix"),
        Path::new("/run/limiquantix"),
        &limiquantix_vm::model::VmId::parse(ID).unwrap(),
    )
}

fn build(def: &VmDefinition) -> Result<QemuCommand, BootError> {
    QemuCommand::build(
        def,
        &paths(),
        &HostConfig::new(AccelKind::Tcg),
        &ResolvedFirmware::Bios,
    )
}

fn strs(cmd: &QemuCommand) -> Vec<String> {
    cmd.args()
        .iter()
        .map(|a| a.to_str().unwrap().to_owned())
        .collect()
}

/// Every value of option `name`, parsed as JSON.
fn json_of(args: &[OsString], name: &str) -> Vec<Value> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| serde_json::from_slice(w[1].as_bytes()).unwrap())
        .collect()
}

fn device(args: &[OsString], id: &str) -> Value {
    json_of(args, "-device")
        .into_iter()
        .find(|d| d["id"] == id)
        .unwrap()
}

/// Splits a QemuOpts string (`a=b,c=d`, `,,` = literal comma) into its keys and values.
fn qemu_opts(s: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut parts = vec![Vec::new()];
    let mut i = 0;
    while i < s.len() {
        if s[i] == b',' {
            if s.get(i + 1) == Some(&b',') {
                parts.last_mut().unwrap().push(b',');
                i += 2;
                continue;
            }
            parts.push(Vec::new());
        } else {
            parts.last_mut().unwrap().push(s[i]);
        }
        i += 1;
    }
    parts
        .into_iter()
        .map(|p| match p.iter().position(|&c| c == b'=') {
            Some(e) => (p[..e].to_vec(), p[e + 1..].to_vec()),
            None => (p, Vec::new()),
        })
        .collect()
}

const SNAPSHOT: &[&str] = &[
    "-nodefaults",
    "-no-user-config",
    "-name",
    "guest=web1",
    "-uuid",
    ID,
    "-msg",
    "timestamp=on",
    "-machine",
    "type=q35,graphics=off",
    "-accel",
    "tcg",
    "-cpu",
    "max",
    "-smp",
    "cpus=2,sockets=1,cores=2,threads=1",
    "-m",
    "1024M",
    "-rtc",
    "base=utc",
    "-boot",
    "strict=on",
    "-device",
    r#"{"bus":"pcie.0","chassis":1,"driver":"pcie-root-port","id":"hp0"}"#,
    "-device",
    r#"{"bus":"pcie.0","chassis":2,"driver":"pcie-root-port","id":"hp1"}"#,
    "-device",
    r#"{"bus":"pcie.0","chassis":3,"driver":"pcie-root-port","id":"hp2"}"#,
    "-device",
    r#"{"bus":"pcie.0","chassis":4,"driver":"pcie-root-port","id":"hp3"}"#,
    r#"-device"#,
    r#"{"driver":"virtio-scsi-pci","id":"scsi0"}"#,
    "-blockdev",
    r#"{"discard":"unmap","driver":"file","filename":"/var/lib/limiquantix/vms/0b6f3a52-8d1e-4c55-9a7e-2f1c0e9d4b21/disk-0.qcow2","node-name":"disk0-file","read-only":false}"#,
    "-blockdev",
    r#"{"discard":"unmap","driver":"qcow2","file":"disk0-file","node-name":"disk0-fmt","read-only":false}"#,
    "-device",
    r#"{"bootindex":1,"drive":"disk0-fmt","driver":"virtio-blk-pci","id":"disk0"}"#,
    "-blockdev",
    r#"{"discard":"ignore","driver":"file","filename":"/var/lib/limiquantix/vms/0b6f3a52-8d1e-4c55-9a7e-2f1c0e9d4b21/cloud-init.iso","node-name":"seed-file","read-only":true}"#,
    "-blockdev",
    r#"{"discard":"ignore","driver":"raw","file":"seed-file","node-name":"seed-fmt","read-only":true}"#,
    "-device",
    r#"{"bus":"scsi0.0","drive":"seed-fmt","driver":"scsi-cd","id":"seed"}"#,
    "-netdev",
    r#"{"hostfwd":[{"str":"tcp:127.0.0.1:40022-:22"}],"id":"net0-net","type":"user"}"#,
    "-device",
    r#"{"driver":"virtio-net-pci","id":"net0","mac":"52:54:00:cc:93:ba","netdev":"net0-net","romfile":""}"#,
    "-chardev",
    "socket,id=qmp,path=/run/limiquantix/vms/0b6f3a52-8d1e-4c55-9a7e-2f1c0e9d4b21/qmp.sock,server=on,wait=off",
    "-mon",
    "chardev=qmp,mode=control",
    "-chardev",
    "socket,id=qga,path=/run/limiquantix/vms/0b6f3a52-8d1e-4c55-9a7e-2f1c0e9d4b21/qga.sock,server=on,wait=off",
    "-device",
    r#"{"driver":"virtio-serial-pci","id":"vserial0"}"#,
    "-device",
    r#"{"bus":"vserial0.0","chardev":"qga","driver":"virtserialport","id":"qga-port","name":"org.qemu.guest_agent.0"}"#,
    "-chardev",
    "socket,id=serial0,path=/run/limiquantix/vms/0b6f3a52-8d1e-4c55-9a7e-2f1c0e9d4b21/serial.sock,server=on,wait=off,logfile=/var/lib/limiquantix/vms/0b6f3a52-8d1e-4c55-9a7e-2f1c0e9d4b21/serial.log,logappend=on",
    "-device",
    r#"{"chardev":"serial0","driver":"isa-serial","id":"serial0-port"}"#,
    "-device",
    r#"{"driver":"virtio-vga","id":"video0"}"#,
    "-display",
    "none",
    "-vnc",
    "127.0.0.1:0,to=99",
    "-pidfile",
    "/run/limiquantix/vms/0b6f3a52-8d1e-4c55-9a7e-2f1c0e9d4b21/qemu.pid",
];

#[test]
fn cloud_image_vm_snapshot() {
    let cmd = build(&cloud_vm()).unwrap();
    let got = strs(&cmd);
    assert_eq!(got.len(), SNAPSHOT.len(), "{got:#?}");
    for (g, want) in got.iter().zip(SNAPSHOT) {
        // JSON compared as values, so the key order of the serializer does not matter.
        if want.starts_with('{') {
            let g: Value = serde_json::from_str(g).unwrap();
            assert_eq!(g, serde_json::from_str::<Value>(want).unwrap());
        } else {
            assert_eq!(g, want);
        }
    }
    assert_eq!(cmd.boot_order().len(), 1);
    assert_eq!(cmd.boot_order()[0].id, "disk0");
    assert_eq!(cmd.boot_order()[0].index, 1);
}

#[test]
fn disk_boots_first_and_seed_never() {
    let mut def = cloud_vm();
    def.cdroms.insert(
        0,
        CdromSpec {
            id: "install".into(),
            path: Some("/isos/debian.iso".into()),
            bootable: true,
            role: CdromRole::Media,
            boot_index: None,
        },
    );
    let cmd = build(&def).unwrap();
    let a = cmd.args();
    assert_eq!(device(a, "disk0")["bootindex"], 1);
    let top = super::top_node("disk0", None);
    assert_eq!(device(a, "disk0")["drive"], top.as_str());
    assert_eq!(device(a, "install")["bootindex"], 2);
    let seed = device(a, "seed");
    assert!(seed.get("bootindex").is_none(), "{seed}");
    // A Linux guest's seed is a SCSI CD-ROM; install media sit on the explicit AHCI controller.
    assert_eq!(seed["driver"], "scsi-cd");
    assert_eq!(seed["bus"], "scsi0.0");
    assert_eq!(device(a, "scsi0")["driver"], "virtio-scsi-pci");
    assert_eq!(device(a, "net0")["romfile"], "");
    let ahci = device(a, "sata0");
    assert_eq!(ahci["driver"], "ich9-ahci");
    assert_eq!(device(a, "install")["driver"], "ide-cd");
    assert_eq!(device(a, "install")["bus"], "sata0.0");
    // The seed comes after every other CD-ROM.
    let at = |id: &str| {
        a.iter()
            .position(|x| x.to_str().unwrap().contains(&format!(r#""id":"{id}""#)))
            .unwrap()
    };
    assert!(at("install") < at("seed"));
}

#[test]
fn seed_on_pc_machine_also_uses_virtio_scsi() {
    let mut def = cloud_vm();
    def.machine = Some(limiquantix_vm::model::MachineType::Pc);
    let cmd = build(&def).unwrap();
    assert_eq!(device(cmd.args(), "seed")["bus"], "scsi0.0");
    assert!(strs(&cmd).contains(&"type=pc,graphics=off".to_owned()));
    assert!(
        !strs(&cmd).iter().any(|a| a.contains("ich9-ahci")),
        "no AHCI controller without a device on it"
    );
}

#[test]
fn a_windows_guests_seed_stays_on_sata() {
    let mut def = cloud_vm();
    def.guest_os = limiquantix_vm::model::GuestOs::Windows;
    let cmd = build(&def).unwrap();
    let seed = device(cmd.args(), "seed");
    assert_eq!(
        (&seed["driver"], &seed["bus"]),
        (&"ide-cd".into(), &"sata0.0".into())
    );
    assert!(
        !strs(&cmd).iter().any(|a| a.contains("virtio-scsi-pci")),
        "no SCSI controller without a device on it"
    );
}

#[test]
fn nothing_bootable_is_refused_with_reason() {
    let mut def = cloud_vm();
    def.disks[0].source = DiskSource::Blank {
        size_bytes: 1 << 30,
    };
    let e = build(&def).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, BootError::NothingBootable { .. }));
    assert!(msg.contains("its only disks are blank (disk0)"), "{msg}");
    assert!(msg.contains("the cloud-init seed never boots"), "{msg}");
    assert!(msg.contains("network boot is off"), "{msg}");
    assert!(msg.contains("turn on boot.network_boot"), "{msg}");

    let empty = VmDefinition::new(def.id.clone(), "empty", 64);
    let msg = build(&empty).unwrap_err().to_string();
    assert!(msg.contains("it has no disk"), "{msg}");

    // A bootable CD-ROM drive without an ISO boots nothing either.
    def.cdroms.push(CdromSpec {
        id: "cd".into(),
        path: None,
        bootable: true,
        role: CdromRole::Media,
        boot_index: None,
    });
    assert!(matches!(
        build(&def).unwrap_err(),
        BootError::NothingBootable { .. }
    ));
    // An installer ISO makes it bootable: blank disk first (falls through), then the ISO.
    def.cdroms[1].path = Some("/isos/installer.iso".into());
    let cmd = build(&def).unwrap();
    let order: Vec<(&str, u16)> = cmd
        .boot_order()
        .iter()
        .map(|e| (e.id.as_str(), e.index))
        .collect();
    assert_eq!(order, [("disk0", 1), ("cd", 2)]);
}

#[test]
fn network_boot_keeps_option_rom_and_comes_last() {
    let mut def = cloud_vm();
    def.disks[0].source = DiskSource::Blank {
        size_bytes: 1 << 30,
    };
    def.boot.network_boot = true;
    let cmd = build(&def).unwrap();
    let nic = device(cmd.args(), "net0");
    assert_eq!(nic["bootindex"], 2);
    assert!(nic.get("romfile").is_none(), "{nic}");
}

#[test]
fn explicit_boot_indices_are_used_as_given() {
    let mut def = cloud_vm();
    def.disks.push(DiskSpec {
        id: "os".into(),
        source: DiskSource::Path {
            path: "/pool/os.raw".into(),
        },
        bus: DiskBus::Scsi,
        format: DiskFormat::Raw,
        readonly: true,
        boot_index: Some(1),
        limits: None,
    });
    let cmd = build(&def).unwrap();
    let a = cmd.args();
    assert_eq!(device(a, "os")["bootindex"], 1);
    assert_eq!(device(a, "os")["bus"], "scsi0.0");
    assert!(device(a, "disk0").get("bootindex").is_none());
    assert_eq!(device(a, "scsi0")["driver"], "virtio-scsi-pci");
    let os_fmt = json_of(a, "-blockdev")
        .into_iter()
        .find(|b| b["node-name"] == "os-fmt")
        .unwrap();
    assert_eq!(os_fmt["driver"], "raw");
    assert_eq!(os_fmt["read-only"], true);
}

#[test]
fn uefi_uses_pflash_with_readonly_code() {
    let mut def = cloud_vm();
    def.firmware = Firmware::Uefi;
    let fw = ResolvedFirmware::Uefi {
        code: "/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
        vars: paths().uefi_vars(),
    };
    let cmd = QemuCommand::build(&def, &paths(), &HostConfig::new(AccelKind::Tcg), &fw).unwrap();
    let s = strs(&cmd);
    assert!(s.contains(&"type=q35,pflash0=fw-code,pflash1=fw-vars".to_owned()));
    let nodes = json_of(cmd.args(), "-blockdev");
    let node = |n: &str| nodes.iter().find(|b| b["node-name"] == n).unwrap().clone();
    assert_eq!(node("fw-code-file")["read-only"], true);
    assert_eq!(node("fw-code")["driver"], "raw");
    assert_eq!(node("fw-code")["read-only"], true);
    assert_eq!(node("fw-vars")["read-only"], false);
    assert_eq!(
        node("fw-vars-file")["filename"],
        paths().uefi_vars().to_str().unwrap()
    );

    def.firmware = Firmware::Bios;
    let e = QemuCommand::build(&def, &paths(), &HostConfig::new(AccelKind::Tcg), &fw);
    assert!(matches!(e, Err(BootError::FirmwareMismatch { .. })));
}

#[test]
fn limits_hugepages_kvm_windows_and_vnc_options() {
    let mut def = cloud_vm();
    def.disks[0].limits = Some(IoLimits {
        iops_total: Some(500),
        bps_read: Some(1 << 20),
        ..IoLimits::default()
    });
    def.memory.hugepages = true;
    def.guest_os = GuestOs::Windows;
    def.console.vnc_display = Some(7);
    def.console.vnc_password = Some("pw".into());
    let cmd = QemuCommand::build(
        &def,
        &paths(),
        &HostConfig::new(AccelKind::Kvm),
        &ResolvedFirmware::Bios,
    )
    .unwrap();
    let a = cmd.args();
    let objects = json_of(a, "-object");
    assert_eq!(objects[0]["qom-type"], "memory-backend-file");
    assert_eq!(objects[0]["size"], 1u64 << 30);
    assert_eq!(objects[1]["limits"]["iops-total"], 500);
    assert_eq!(objects[1]["limits"]["bps-read"], 1 << 20);
    assert_eq!(device(a, "disk0")["drive"], "disk0-thr");
    let top = super::top_node("disk0", def.disks[0].limits.as_ref());
    assert_eq!(
        device(a, "disk0")["drive"],
        top.as_str(),
        "a live resize goes to the device's node"
    );
    let s = strs(&cmd);
    assert!(s.contains(&"127.0.0.1:7,password=on".to_owned()), "{s:?}");
    assert!(s.contains(&"base=localtime,driftfix=slew".to_owned()));
    assert!(s.contains(&"kvm-pit.lost_tick_policy=delay".to_owned()));
    assert!(s.iter().any(|x| x.starts_with("host,hv_relaxed")));
    assert!(s.contains(&"type=q35,graphics=off,memory-backend=ram0".to_owned()));
    assert_eq!(device(a, "video0")["driver"], "VGA");
    // The password is set over QMP, never on the command line.
    assert!(!s.iter().any(|x| x.contains("pw,") || x.ends_with("=pw")));
}

/// Hostile disk and ISO paths stay one JSON string: same argument count, same keys, the exact
/// path back out.
#[test]
fn hostile_image_paths_cannot_add_options() {
    let benign = build(&cloud_vm()).unwrap();
    for evil in [
        "/img/a,driver=raw,file.filename=/etc/shadow",
        "/img/a\",\"read-only\":false,\"x\":\"",
        "/img/a}{\"driver\":\"raw\"",
        "/img/a b'c=d\\e",
        "/img/-device virtio-rng",
    ] {
        let mut def = cloud_vm();
        def.disks[0].source = DiskSource::Path { path: evil.into() };
        def.cdroms[0].path = Some(format!("{evil}.iso").into());
        let cmd = build(&def).unwrap();
        assert_eq!(cmd.args().len(), benign.args().len(), "{evil}");
        let nodes = json_of(cmd.args(), "-blockdev");
        let benign_nodes = json_of(benign.args(), "-blockdev");
        for (n, b) in nodes.iter().zip(&benign_nodes) {
            let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(n), keys(b), "{evil}");
        }
        let files: Vec<&str> = nodes
            .iter()
            .filter(|n| n["driver"] == "file")
            .map(|n| n["filename"].as_str().unwrap())
            .collect();
        assert_eq!(files, [evil.to_owned(), format!("{evil}.iso")]);
    }
}

#[test]
fn unsafe_paths_are_refused_with_the_field() {
    let cases: Vec<(PathBuf, &str)> = vec![
        ("/img/../etc/shadow".into(), "must be normalized"),
        ("/img/a\nb".into(), "control character"),
        ("relative.qcow2".into(), "absolute"),
        (
            PathBuf::from(OsStr::from_bytes(b"/img/\xff\xfe.qcow2")),
            "UTF-8",
        ),
    ];
    for (p, why) in cases {
        let mut def = cloud_vm();
        def.disks[0].source = DiskSource::Path { path: p.clone() };
        match build(&def).unwrap_err() {
            BootError::Invalid(e) => {
                assert_eq!(e.field, "disks[0].source.path", "{p:?}");
                assert!(e.problem.contains(why), "{p:?}: {e}");
            }
            e => panic!("{p:?}: {e}"),
        }
    }
}

/// The backend's own paths go into `-chardev` with commas doubled: QemuOpts reads back exactly
/// the keys we wrote, with the path intact, even for commas, `=` and non-UTF-8 bytes.
#[test]
fn hostile_runtime_paths_stay_one_chardev_value() {
    let run = OsStr::from_bytes(b"/run/x,server=off,path=/etc/y\xff");
    let p = RuntimePaths {
        vm_dir: "/var/lib/lq/vms/a,b".into(),
        run_dir: PathBuf::from(run),
    };
    let cmd = QemuCommand::build(
        &cloud_vm(),
        &p,
        &HostConfig::new(AccelKind::Tcg),
        &ResolvedFirmware::Bios,
    )
    .unwrap();
    let a = cmd.args();
    let chardevs: Vec<&OsString> = a
        .windows(2)
        .filter(|w| w[0] == "-chardev")
        .map(|w| &w[1])
        .collect();
    assert_eq!(chardevs.len(), 3);
    let socket_keys: Vec<&[u8]> = vec![b"socket", b"id", b"path", b"server", b"wait"];
    for (c, (id, sock)) in chardevs
        .iter()
        .zip([("qmp", p.qmp_socket()), ("qga", p.qga_socket())])
    {
        let opts = qemu_opts(c.as_bytes());
        let keys: Vec<&[u8]> = opts.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, socket_keys);
        assert_eq!(opts[1].1, id.as_bytes());
        assert_eq!(opts[2].1, sock.as_os_str().as_bytes());
    }
    // The serial console: a socket with a log file, both hostile paths intact.
    let opts = qemu_opts(chardevs[2].as_bytes());
    let keys: Vec<&[u8]> = opts.iter().map(|(k, _)| k.as_slice()).collect();
    let mut want = socket_keys.clone();
    want.extend([&b"logfile"[..], b"logappend"]);
    assert_eq!(keys, want);
    assert_eq!(opts[1].1, b"serial0");
    assert_eq!(opts[2].1, p.serial_socket().as_os_str().as_bytes());
    assert_eq!(opts[5].1, p.serial_log().as_os_str().as_bytes());
    assert_eq!(opts[6].1, b"on");
    // The pidfile is a whole argument of its own.
    let pid = a.iter().position(|x| x == "-pidfile").unwrap();
    assert_eq!(a[pid + 1], p.pidfile().into_os_string());
}

#[test]
fn overlong_socket_path_is_refused() {
    // Too long for qmp.sock (the first socket); then short enough for it but not for serial.sock.
    for (dirname_len, field) in [(100, "paths.qmp_socket"), (91, "paths.serial_socket")] {
        let p = RuntimePaths {
            vm_dir: "/var/lib/lq/vms/x".into(),
            run_dir: PathBuf::from(format!("/run/{}", "d".repeat(dirname_len))),
        };
        let e = QemuCommand::build(
            &cloud_vm(),
            &p,
            &HostConfig::new(AccelKind::Tcg),
            &ResolvedFirmware::Bios,
        )
        .unwrap_err();
        assert!(e.to_string().contains(field), "{e}");
    }
}

#[test]
fn tap_and_bridge_netdevs() {
    let mut def = cloud_vm();
    def.nics[0].network = NicNetwork::Tap {
        ifname: "tap0".into(),
    };
    let cmd = build(&def).unwrap();
    let n = &json_of(cmd.args(), "-netdev")[0];
    assert_eq!(n["type"], "tap");
    assert_eq!(n["script"], "no");
    def.nics[0].network = NicNetwork::Bridge { name: "br0".into() };
    let cmd = build(&def).unwrap();
    assert_eq!(json_of(cmd.args(), "-netdev")[0]["br"], "br0");
}

/// Deterministic pseudo-random strings over an alphabet of the characters that matter to QEMU's
/// parsers (commas, quotes, braces, `=`, `:`, backslashes, dots, slashes, spaces, non-ASCII).
fn hostile_strings(n: usize) -> Vec<String> {
    const ALPHABET: &[&str] = &[
        ",", ",,", "\"", "'", "{", "}", "=", ":", "\\", ".", "..", "/", " ", "-", "a", "Z", "0",
        "é", "☃", "\u{202e}", "id=", "driver", "file.", "\t", "\n",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let len = next() % 24;
            (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect()
        })
        .collect()
}

/// Any disk path is either refused with its field named, or ends up, byte for byte, as the
/// `filename` of one `file` node, with the same argument count and keys as a benign path.
#[test]
fn any_disk_path_stays_data() {
    let benign = build(&cloud_vm()).unwrap();
    let (mut accepted, mut refused) = (0, 0);
    for name in hostile_strings(500) {
        let path = format!("/img/{name}");
        let mut def = cloud_vm();
        def.disks[0].source = DiskSource::Path {
            path: path.clone().into(),
        };
        match build(&def) {
            Err(BootError::Invalid(e)) => {
                assert_eq!(e.field, "disks[0].source.path", "{path:?}");
                refused += 1;
            }
            Err(e) => panic!("{path:?}: {e}"),
            Ok(cmd) => {
                assert_eq!(cmd.args().len(), benign.args().len(), "{path:?}");
                let node = json_of(cmd.args(), "-blockdev").remove(0);
                assert_eq!(node["filename"].as_str(), Some(path.as_str()));
                assert_eq!(node.as_object().unwrap().len(), 5, "{node}");
                accepted += 1;
            }
        }
    }
    assert!(
        accepted > 100 && refused > 50,
        "{accepted} accepted, {refused} refused"
    );
}

/// Any run directory reads back from `-chardev` as exactly our keys and the exact path.
#[test]
fn any_run_dir_stays_one_chardev_value() {
    for name in hostile_strings(300) {
        let mut dir = b"/run/".to_vec();
        dir.extend_from_slice(name.as_bytes());
        dir.push(0xff); // and a byte that is not UTF-8
        let p = RuntimePaths {
            vm_dir: "/var/lib/lq/vms/x".into(),
            run_dir: PathBuf::from(OsStr::from_bytes(&dir)),
        };
        let Ok(cmd) = QemuCommand::build(
            &cloud_vm(),
            &p,
            &HostConfig::new(AccelKind::Tcg),
            &ResolvedFirmware::Bios,
        ) else {
            // Only an over-long socket path may be refused (serial.sock is the longest name).
            assert!(
                dir.len() + "/vms/x/serial.sock".len() > MAX_SOCKET_PATH,
                "{name:?}"
            );
            continue;
        };
        let a = cmd.args();
        let qmp = a.iter().position(|x| x == "-chardev").unwrap() + 1;
        let opts = qemu_opts(a[qmp].as_bytes());
        let keys: Vec<&[u8]> = opts.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [&b"socket"[..], b"id", b"path", b"server", b"wait"]);
        assert_eq!(opts[2].1, p.qmp_socket().as_os_str().as_bytes());
    }
}
