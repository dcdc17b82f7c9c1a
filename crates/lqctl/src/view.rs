//! Stable, serialisable views of the daemon's answers: what `-o json|yaml` prints and what the
//! tables show. Field names here are the scripting contract; the wire types may change under it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use limiquantix_proto::v1::{GuestAgentInfo, ImageInfo, PowerState, VmStatusResponse};
use serde::Serialize;

use crate::output::{Table, paint_state};
use crate::units::{MIB, human_bytes, human_duration};

/// A VM as lqctl shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct VmView {
    /// The VM's id (a UUID).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Power state: running, stopped, paused, suspended, crashed or unknown.
    pub state: String,
    /// vCPUs, when the daemon reports them.
    pub cpus: Option<u32>,
    /// Memory in MiB, when the daemon reports it.
    pub memory_mib: Option<u64>,
    /// Guest IP addresses reported by its agent (loopback left out).
    pub ips: Vec<String>,
    /// When it last started (RFC 3339), while running.
    pub started_at: Option<String>,
    /// Seconds since it started, while running.
    pub uptime_seconds: Option<u64>,
    /// Boot phase the daemon reports while the VM runs: qemu started, firmware, kernel
    /// running, cloud-init STAGE, ready, failed: REASON.
    pub boot: Option<String>,
    /// Whether the guest agent answers.
    pub agent_connected: bool,
    /// The guest's host name, from its agent.
    pub hostname: Option<String>,
    /// The guest's OS, from its agent.
    pub os: Option<String>,
    /// Disks: id and source.
    pub disks: Vec<DiskView>,
    /// Labels given at creation.
    pub labels: BTreeMap<String, String>,
}

/// A disk of a VM.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DiskView {
    /// Disk id within the VM.
    pub id: String,
    /// The file used as is, if any.
    pub path: Option<String>,
    /// The base image of an overlay, if any.
    pub backing_file: Option<String>,
    /// Size in GiB (0 when not reported).
    pub size_gib: u64,
}

/// An image of the node's library.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImageView {
    /// Its name (the file name).
    pub name: String,
    /// Its format: qcow2, raw or iso.
    pub format: String,
    /// File size in bytes.
    pub size_bytes: u64,
    /// Path on the node.
    pub path: String,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The guest's reachable addresses: the agent's `ip_addresses` (the daemon leaves out loopback
/// and link-local), or else the interfaces' addresses without those.
fn guest_ips(agent: &GuestAgentInfo) -> Vec<String> {
    let from_interfaces = || {
        agent
            .interfaces
            .iter()
            .flat_map(|i| i.ipv4_addresses.iter().chain(&i.ipv6_addresses))
            .cloned()
            .collect::<Vec<_>>()
    };
    let all = if agent.ip_addresses.is_empty() {
        from_interfaces()
    } else {
        agent.ip_addresses.clone()
    };
    all.iter()
        .filter_map(|ip| ip.split('/').next()?.parse::<std::net::IpAddr>().ok())
        .filter(|ip| {
            !ip.is_loopback()
                && !matches!(ip, std::net::IpAddr::V6(v6) if v6.is_unicast_link_local())
        })
        .map(|ip| ip.to_string())
        .collect()
}

/// The addresses a table shows: the IPv4 ones when there are any (IPv6 ones are in `-o json`).
pub fn table_ips(ips: &[String]) -> String {
    let v4: Vec<&str> = ips
        .iter()
        .map(String::as_str)
        .filter(|ip| !ip.contains(':'))
        .collect();
    match (v4.is_empty(), ips.is_empty()) {
        (_, true) => "-".to_owned(),
        (false, _) => v4.join(","),
        (true, false) => ips.join(","),
    }
}

/// The lowercase name of a wire power state.
pub fn state_name(state: i32) -> String {
    PowerState::try_from(state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("POWER_STATE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

impl VmView {
    /// Builds the view; `now` makes uptimes reproducible in tests.
    pub fn new(vm: &VmStatusResponse, now: SystemTime) -> Self {
        let state = state_name(vm.state);
        let running = matches!(state.as_str(), "running" | "paused");
        let started = vm
            .started_at
            .as_ref()
            .filter(|t| running && t.seconds > 0)
            .and_then(|t| u64::try_from(t.seconds).ok())
            .map(|s| UNIX_EPOCH + Duration::from_secs(s));
        let agent = vm.guest_agent.as_ref();
        let mut ips = agent.map(guest_ips).unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        ips.retain(|ip| seen.insert(ip.clone()));
        VmView {
            id: vm.vm_id.clone(),
            name: vm.name.clone(),
            state,
            cpus: (vm.vcpus > 0).then_some(vm.vcpus),
            memory_mib: vm
                .resource_usage
                .as_ref()
                .map(|r| r.memory_total_bytes / MIB)
                .filter(|m| *m > 0),
            ips,
            started_at: vm
                .started_at
                .as_ref()
                .filter(|_| started.is_some())
                .map(|t| t.to_string()),
            uptime_seconds: started.map(|s| now.duration_since(s).unwrap_or_default().as_secs()),
            boot: vm
                .boot
                .as_ref()
                .filter(|_| running)
                .map(|b| b.description.clone())
                .filter(|d| !d.is_empty()),
            agent_connected: agent.is_some_and(|a| a.connected),
            hostname: agent.and_then(|a| non_empty(&a.hostname)),
            os: agent.and_then(|a| non_empty(format!("{} {}", a.os_name, a.os_version).trim())),
            disks: vm
                .disks
                .iter()
                .map(|d| DiskView {
                    id: d.id.clone(),
                    path: non_empty(&d.path),
                    backing_file: non_empty(&d.backing_file),
                    size_gib: d.size_gib,
                })
                .collect(),
            labels: vm
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

impl From<&ImageInfo> for ImageView {
    fn from(i: &ImageInfo) -> Self {
        ImageView {
            name: i.name.clone(),
            format: i.format.clone(),
            size_bytes: i.size_bytes,
            path: i.path.clone(),
        }
    }
}

fn dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The `vm list` table.
pub fn vm_table(vms: &[VmView], colour: bool) -> String {
    let mut t = Table::new(&["NAME", "ID", "STATE", "CPUS", "MEMORY", "IPS", "UPTIME"]);
    for vm in vms {
        t.row(vec![
            vm.name.clone(),
            vm.id.chars().take(8).collect(),
            paint_state(&vm.state, colour),
            dash(vm.cpus),
            dash(vm.memory_mib.map(|m| human_bytes(m * MIB))),
            table_ips(&vm.ips),
            dash(
                vm.uptime_seconds
                    .map(|s| human_duration(Duration::from_secs(s))),
            ),
        ]);
    }
    t.render()
}

/// The `vm show` text: one `key: value` per line.
pub fn vm_details(vm: &VmView, colour: bool) -> String {
    let mut lines = vec![
        ("name", vm.name.clone()),
        ("id", vm.id.clone()),
        ("state", paint_state(&vm.state, colour)),
        ("cpus", dash(vm.cpus)),
        ("memory", dash(vm.memory_mib.map(|m| human_bytes(m * MIB)))),
        (
            "ips",
            if vm.ips.is_empty() {
                "-".to_owned()
            } else {
                vm.ips.join(", ")
            },
        ),
        ("started", dash(vm.started_at.clone())),
        (
            "uptime",
            dash(
                vm.uptime_seconds
                    .map(|s| human_duration(Duration::from_secs(s))),
            ),
        ),
        ("boot", dash(vm.boot.clone())),
        (
            "agent",
            if vm.agent_connected {
                "connected".to_owned()
            } else {
                "not connected".to_owned()
            },
        ),
        ("hostname", dash(vm.hostname.clone())),
        ("os", dash(vm.os.clone())),
    ];
    for d in &vm.disks {
        let source = match (&d.backing_file, &d.path) {
            (Some(b), _) => format!("overlay on {b}"),
            (None, Some(p)) => p.clone(),
            (None, None) => "blank".to_owned(),
        };
        let size = if d.size_gib > 0 {
            format!(", {} GiB", d.size_gib)
        } else {
            String::new()
        };
        lines.push(("disk", format!("{}: {source}{size}", d.id)));
    }
    for (k, v) in &vm.labels {
        lines.push(("label", format!("{k}={v}")));
    }
    lines
        .iter()
        .map(|(k, v)| format!("{:<9} {v}\n", format!("{k}:")))
        .collect()
}

/// The `image list` table.
pub fn image_table(images: &[ImageView]) -> String {
    let mut t = Table::new(&["NAME", "FORMAT", "SIZE", "PATH"]);
    for i in images {
        t.row(vec![
            i.name.clone(),
            i.format.clone(),
            human_bytes(i.size_bytes),
            i.path.clone(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::snapshot::assert_snapshot;
    use limiquantix_proto::v1::{
        BootPhase, BootProgress, DiskSpec, GuestNetworkInterface, ResourceUsage,
    };

    // `..Default::default()` stays so the fixture survives new fields in the wire type.
    #[allow(clippy::needless_update)]
    fn vms() -> (Vec<VmStatusResponse>, SystemTime) {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let started = prost_types::Timestamp {
            seconds: 1_800_000_000 - 3_725,
            nanos: 0,
        };
        let web = VmStatusResponse {
            vm_id: "3f2a9c1e-7b4d-4e8a-9f00-0123456789ab".into(),
            name: "web1".into(),
            state: PowerState::Running as i32,
            started_at: Some(started),
            resource_usage: Some(ResourceUsage {
                memory_total_bytes: 2 * 1024 * MIB,
                ..Default::default()
            }),
            vcpus: 2,
            boot: Some(BootProgress {
                phase: BootPhase::Ready as i32,
                description: "ready".into(),
                ..Default::default()
            }),
            guest_agent: Some(GuestAgentInfo {
                connected: true,
                hostname: "web1".into(),
                os_name: "Debian GNU/Linux".into(),
                os_version: "12".into(),
                interfaces: vec![
                    GuestNetworkInterface {
                        name: "lo".into(),
                        ipv4_addresses: vec!["127.0.0.1/8".into()],
                        ..Default::default()
                    },
                    GuestNetworkInterface {
                        name: "eth0".into(),
                        ipv4_addresses: vec!["10.0.2.15/24".into()],
                        ipv6_addresses: vec![
                            "fec0::5054:ff:fe12:3456/64".into(),
                            "fe80::5054:ff:fe12:3456/64".into(),
                        ],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            disks: vec![DiskSpec {
                id: "disk-0".into(),
                backing_file: "/var/lib/limiquantix/images/debian-12.qcow2".into(),
                size_gib: 20,
                ..Default::default()
            }],
            labels: [("lq.ssh".to_owned(), "admin@127.0.0.1:40022".to_owned())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let db = VmStatusResponse {
            vm_id: "9c000000-0000-4000-8000-000000000003".into(),
            name: "database".into(),
            state: PowerState::Stopped as i32,
            started_at: Some(started),
            ..Default::default()
        };
        (vec![web, db], now)
    }

    #[test]
    fn vm_table_snapshot() {
        let (vms, now) = vms();
        let views: Vec<VmView> = vms.iter().map(|v| VmView::new(v, now)).collect();
        assert_snapshot("vm_list.txt", &vm_table(&views, false));
        assert_snapshot("vm_show.txt", &vm_details(&views[0], false));
        assert_snapshot("vm_list.yaml", &serde_saphyr::to_string(&views).unwrap());
        assert_snapshot(
            "vm_list.json",
            &(serde_json::to_string_pretty(&views).unwrap() + "\n"),
        );
    }

    #[test]
    fn stopped_vms_have_no_uptime() {
        let (vms, now) = vms();
        let db = VmView::new(&vms[1], now);
        assert_eq!((db.uptime_seconds, db.started_at), (None, None));
        let web = VmView::new(&vms[0], now);
        assert_eq!(web.uptime_seconds, Some(3725));
        assert_eq!(web.ips, ["10.0.2.15", "fec0::5054:ff:fe12:3456"]);
        assert_eq!(table_ips(&web.ips), "10.0.2.15");
        assert_eq!(table_ips(&web.ips[1..]), "fec0::5054:ff:fe12:3456");
        assert_eq!(table_ips(&[]), "-");
    }

    #[test]
    fn image_table_snapshot() {
        let images = [ImageView {
            name: "debian-12.qcow2".into(),
            format: "qcow2".into(),
            size_bytes: 178 * MIB,
            path: "/var/lib/limiquantix/images/debian-12.qcow2".into(),
        }];
        assert_snapshot("image_list.txt", &image_table(&images));
    }
}
