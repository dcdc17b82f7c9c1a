//! `lqctl vm disk attach|detach` and `lqctl vm nic attach|detach`: AttachDisk, DetachDisk,
//! AttachNIC and DetachNIC. The daemon hot-plugs while the VM runs (or is paused) and edits the
//! definition while it is stopped.

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use limiquantix_proto::v1::{
    AttachDiskRequest, AttachNicRequest, DetachDiskRequest, DetachNicRequest, DiskBus, DiskFormat,
    DiskSpec, NicModel, NicSpec, VmStatusResponse,
};

use crate::create::{ImageChoice, choose_image, expand_home};
use crate::ctx::Ctx;
use crate::daemon::CallExt as _;
use crate::lookup::{find, status};
use crate::output::{Format, print_structured};
use crate::units::parse_disk_gib;

/// Disk commands.
#[derive(Debug, Subcommand)]
pub enum DiskCommand {
    /// Attach a disk: a new blank disk (--size), an overlay on an image (--backing), or an
    /// existing image or volume (--path); live while the VM runs.
    Attach(DiskAttachArgs),
    /// Detach a disk (not the boot disk, not a CD-ROM); its file stays unless --delete-file.
    Detach(DiskDetachArgs),
}

/// NIC commands.
#[derive(Debug, Subcommand)]
pub enum NicCommand {
    /// Attach a network interface; live while the VM runs.
    Attach(NicAttachArgs),
    /// Detach a network interface.
    Detach(NicDetachArgs),
}

/// The bus of an attached disk (the buses QEMU can hot-plug).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Bus {
    /// virtio-blk.
    Virtio,
    /// virtio-scsi.
    Scsi,
}

/// The format of a disk the daemon creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Fmt {
    /// qcow2 (thin, snapshots).
    Qcow2,
    /// Raw.
    Raw,
}

/// A NIC's device model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// virtio-net.
    Virtio,
    /// Intel e1000.
    E1000,
    /// Realtek RTL8139.
    Rtl8139,
}

/// `vm disk attach`.
#[derive(Debug, Args)]
pub struct DiskAttachArgs {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
    /// Size in whole GiB (e.g. 10G): a blank disk needs it; an overlay is as large as its
    /// image unless a larger size is given; an existing image keeps its own.
    #[arg(long, value_parser = parse_disk_gib, value_name = "SIZE",
        required_unless_present_any = ["path", "backing"], conflicts_with = "path")]
    pub size: Option<u64>,
    /// The bus the guest sees it on.
    #[arg(long, value_enum, default_value_t = Bus::Virtio)]
    pub bus: Bus,
    /// The disk's id in the VM; the daemon picks disk<N> when absent.
    #[arg(long)]
    pub id: Option<String>,
    /// Format of a disk the daemon creates (an overlay is always qcow2); --path: raw reads the
    /// image raw, else its format is detected.
    #[arg(long, value_enum)]
    pub format: Option<Fmt>,
    /// Storage pool to create the disk in (as a volume); the VM's directory when absent.
    #[arg(long)]
    pub pool: Option<String>,
    /// Use an existing image: a path on the node (with a '/') or a volume id of a pool.
    #[arg(long, value_name = "PATH|VOLUME", conflicts_with = "backing")]
    pub path: Option<String>,
    /// Create a copy-on-write overlay on an image: of the node's library (name or id) or a path.
    #[arg(long, value_name = "IMAGE")]
    pub backing: Option<String>,
}

/// `vm disk detach`.
#[derive(Debug, Args)]
pub struct DiskDetachArgs {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
    /// The disk's id (lqctl vm show lists them).
    pub disk: String,
    /// Also delete the disk's file, when the daemon created it (blank disks and overlays;
    /// never an image given by path).
    #[arg(long)]
    pub delete_file: bool,
}

/// `vm nic attach`.
#[derive(Debug, Args)]
pub struct NicAttachArgs {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
    /// The network: user (QEMU's user-mode NAT) or a network the daemon maps to a bridge.
    #[arg(long, default_value = "user", value_name = "NET")]
    pub network: String,
    /// MAC address (e.g. 52:54:00:12:34:56); derived from the VM id when absent.
    #[arg(long, value_parser = parse_mac)]
    pub mac: Option<String>,
    /// The device model.
    #[arg(long, value_enum, default_value_t = Model::Virtio)]
    pub model: Model,
    /// The NIC's id in the VM; the daemon picks nic<N> when absent.
    #[arg(long)]
    pub id: Option<String>,
}

/// `vm nic detach`.
#[derive(Debug, Args)]
pub struct NicDetachArgs {
    /// The VM: name, id, or unique id prefix.
    pub vm: String,
    /// The NIC's id.
    pub nic: String,
}

/// Parses a MAC address: six two-digit hex octets separated by ':' (lower-cased).
pub fn parse_mac(s: &str) -> Result<String, String> {
    let octets: Vec<&str> = s.split(':').collect();
    let hex = |o: &&str| o.len() == 2 && o.chars().all(|c| c.is_ascii_hexdigit());
    if octets.len() != 6 || !octets.iter().all(hex) {
        return Err(format!(
            "MAC {s:?} is not valid: write six hex octets, e.g. 52:54:00:12:34:56"
        ));
    }
    Ok(s.to_ascii_lowercase())
}

/// The wire disk of `vm disk attach`, with `path` and `backing` already resolved.
pub fn disk_spec(a: &DiskAttachArgs, path: Option<String>, backing: Option<String>) -> DiskSpec {
    DiskSpec {
        id: a.id.clone().unwrap_or_default(),
        path: path.unwrap_or_default(),
        size_gib: a.size.unwrap_or(0),
        bus: match a.bus {
            Bus::Virtio => DiskBus::Virtio,
            Bus::Scsi => DiskBus::Scsi,
        } as i32,
        format: match a.format {
            Some(Fmt::Raw) => DiskFormat::Raw,
            Some(Fmt::Qcow2) | None => DiskFormat::Qcow2,
        } as i32,
        backing_file: backing.unwrap_or_default(),
        pool_id: a.pool.clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// The wire NIC of `vm nic attach`.
pub fn nic_spec(a: &NicAttachArgs) -> NicSpec {
    NicSpec {
        id: a.id.clone().unwrap_or_default(),
        mac_address: a.mac.clone().unwrap_or_default(),
        network: a.network.clone(),
        model: match a.model {
            Model::Virtio => NicModel::Virtio,
            Model::E1000 => NicModel::E1000,
            Model::Rtl8139 => NicModel::Rtl8139,
        } as i32,
        ..Default::default()
    }
}

/// `--path`: a path (with a '/') made absolute, or a volume id as it is.
fn resolve_path(p: &str) -> anyhow::Result<String> {
    if !p.contains('/') {
        return Ok(p.to_string());
    }
    let path = std::path::absolute(expand_home(p))
        .with_context(|| format!("--path {p}: not a usable path"))?;
    Ok(path.display().to_string())
}

/// `--backing`: the disk image's path on the node.
async fn resolve_backing(ctx: &Ctx, image: &str) -> anyhow::Result<String> {
    match choose_image(ctx, image).await? {
        ImageChoice::Disk(path) => Ok(path),
        ImageChoice::Iso(_) => {
            bail!("--backing {image}: an ISO cannot back a disk (attach it as a CD-ROM medium)")
        }
    }
}

/// Runs a disk command.
pub async fn run_disk(ctx: &Ctx, command: DiskCommand) -> anyhow::Result<()> {
    match command {
        DiskCommand::Attach(a) => {
            let vm = find(ctx, &a.vm).await?;
            let path = a.path.as_deref().map(resolve_path).transpose()?;
            let backing = match &a.backing {
                Some(b) => Some(resolve_backing(ctx, b).await?),
                None => None,
            };
            let req = AttachDiskRequest {
                vm_id: vm.vm_id.clone(),
                disk: Some(disk_spec(&a, path, backing)),
            };
            ctx.daemon
                .node()
                .attach_disk(req)
                .await
                .or_fail(&ctx.daemon)?;
            let id = match a.id {
                Some(id) => id,
                None => new_disk(&vm, &status(ctx, &vm.vm_id).await?),
            };
            report(ctx, &vm, "disk", &id, "attached")
        }
        DiskCommand::Detach(a) => {
            let vm = find(ctx, &a.vm).await?;
            let req = DetachDiskRequest {
                vm_id: vm.vm_id.clone(),
                disk_id: a.disk.clone(),
                delete_file: a.delete_file,
            };
            ctx.daemon
                .node()
                .detach_disk(req)
                .await
                .or_fail(&ctx.daemon)?;
            report(ctx, &vm, "disk", &a.disk, "detached")
        }
    }
}

/// Runs a NIC command.
pub async fn run_nic(ctx: &Ctx, command: NicCommand) -> anyhow::Result<()> {
    match command {
        NicCommand::Attach(a) => {
            let vm = find(ctx, &a.vm).await?;
            let req = AttachNicRequest {
                vm_id: vm.vm_id.clone(),
                nic: Some(nic_spec(&a)),
            };
            ctx.daemon
                .node()
                .attach_nic(req)
                .await
                .or_fail(&ctx.daemon)?;
            // The API answers nothing: an id the daemon chose is not known here.
            let id = a.id.as_deref().unwrap_or("");
            report(ctx, &vm, "NIC", id, "attached")
        }
        NicCommand::Detach(a) => {
            let vm = find(ctx, &a.vm).await?;
            let req = DetachNicRequest {
                vm_id: vm.vm_id.clone(),
                nic_id: a.nic.clone(),
            };
            ctx.daemon
                .node()
                .detach_nic(req)
                .await
                .or_fail(&ctx.daemon)?;
            report(ctx, &vm, "NIC", &a.nic, "detached")
        }
    }
}

/// The id of the disk `after` has and `before` had not (empty when none is found).
fn new_disk(before: &VmStatusResponse, after: &VmStatusResponse) -> String {
    let had = |id: &str| before.disks.iter().any(|d| d.id == id);
    after
        .disks
        .iter()
        .find(|d| !had(&d.id))
        .map(|d| d.id.clone())
        .unwrap_or_default()
}

/// Prints `NAME  KIND ID RESULT` (table) or the outcome (json/yaml).
fn report(
    ctx: &Ctx,
    vm: &VmStatusResponse,
    kind: &str,
    id: &str,
    what: &str,
) -> anyhow::Result<()> {
    match ctx.format {
        Format::Table if id.is_empty() => println!("{}  {kind} {what}", vm.name),
        Format::Table => println!("{}  {kind} {id} {what}", vm.name),
        f => print_structured(
            &serde_json::json!({
                "vm": vm.name, "vm_id": vm.vm_id, "kind": kind.to_ascii_lowercase(),
                "id": id, "result": what,
            }),
            f,
        )?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        c: Cmd,
    }

    #[derive(Subcommand)]
    enum Cmd {
        #[command(subcommand)]
        Disk(DiskCommand),
        #[command(subcommand)]
        Nic(NicCommand),
    }

    fn disk_attach(args: &[&str]) -> Result<DiskAttachArgs, clap::Error> {
        let argv = ["t", "disk", "attach", "web"].iter().chain(args);
        match T::try_parse_from(argv)?.c {
            Cmd::Disk(DiskCommand::Attach(a)) => Ok(a),
            Cmd::Nic(_) | Cmd::Disk(_) => panic!("not disk attach"),
        }
    }

    #[test]
    fn a_blank_disk_needs_a_size_and_takes_bus_format_pool_and_id() {
        let a = disk_attach(&["--size", "10G"]).unwrap();
        assert_eq!((a.size, a.bus, a.format), (Some(10), Bus::Virtio, None));
        let d = disk_spec(&a, None, None);
        assert_eq!((d.size_gib, d.bus, d.format), (10, 0, 0));
        assert!(d.id.is_empty() && d.path.is_empty() && d.pool_id.is_empty());
        let args = [
            "--size", "2G", "--bus", "scsi", "--format", "raw", "--pool", "fast", "--id", "data1",
        ];
        let d = disk_spec(&disk_attach(&args).unwrap(), None, None);
        assert_eq!(d.bus, DiskBus::Scsi as i32);
        assert_eq!(d.format, DiskFormat::Raw as i32);
        assert_eq!((d.pool_id.as_str(), d.id.as_str()), ("fast", "data1"));
        let e = disk_attach(&[]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(disk_attach(&["--size", "1500M"]).is_err(), "whole GiB only");
        assert!(disk_attach(&["--size", "1G", "--bus", "sata"]).is_err());
    }

    #[test]
    fn path_and_backing_exclude_each_other_and_path_excludes_size() {
        let a = disk_attach(&["--path", "vol1"]).unwrap();
        assert_eq!(a.size, None);
        assert_eq!(
            resolve_path("vol1").unwrap(),
            "vol1",
            "a volume id as it is"
        );
        assert_eq!(resolve_path("/srv/a.qcow2").unwrap(), "/srv/a.qcow2");
        let rel = resolve_path("./a.img").unwrap();
        assert!(rel.starts_with('/') && rel.ends_with("a.img"), "{rel}");
        let d = disk_spec(&a, Some("vol1".into()), None);
        assert_eq!((d.path.as_str(), d.size_gib), ("vol1", 0));
        let a = disk_attach(&["--backing", "debian"]).unwrap();
        assert_eq!(a.size, None, "an overlay takes its image's size");
        let d = disk_spec(&a, None, Some("/img/debian.qcow2".into()));
        assert_eq!(d.backing_file, "/img/debian.qcow2");
        assert!(disk_attach(&["--backing", "x", "--size", "30G"]).is_ok());
        let e = disk_attach(&["--path", "v", "--backing", "x"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        let e = disk_attach(&["--path", "v", "--size", "1G"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn detach_names_the_device() {
        let t = T::parse_from(["t", "disk", "detach", "web", "data1", "--delete-file"]);
        assert!(
            matches!(t.c, Cmd::Disk(DiskCommand::Detach(a)) if a.disk == "data1" && a.delete_file)
        );
        let t = T::parse_from(["t", "disk", "detach", "web", "data1"]);
        assert!(matches!(t.c, Cmd::Disk(DiskCommand::Detach(a)) if !a.delete_file));
        let t = T::parse_from(["t", "nic", "detach", "web", "nic1"]);
        assert!(matches!(t.c, Cmd::Nic(NicCommand::Detach(a)) if a.nic == "nic1"));
        assert!(T::try_parse_from(["t", "nic", "detach", "web"]).is_err());
    }

    #[test]
    fn nic_attach_takes_network_mac_model_and_id() {
        let nic = |args: &[&str]| {
            let argv = ["t", "nic", "attach", "web"].iter().chain(args);
            match T::try_parse_from(argv).map(|t| t.c) {
                Ok(Cmd::Nic(NicCommand::Attach(a))) => Ok(nic_spec(&a)),
                Ok(_) => panic!("not nic attach"),
                Err(e) => Err(e),
            }
        };
        let n = nic(&[]).unwrap();
        assert_eq!(
            (n.network.as_str(), n.model),
            ("user", NicModel::Virtio as i32)
        );
        assert!(n.id.is_empty() && n.mac_address.is_empty());
        let args = [
            "--network",
            "lan",
            "--mac",
            "52:54:00:AB:cd:01",
            "--model",
            "e1000",
            "--id",
            "nic1",
        ];
        let n = nic(&args).unwrap();
        assert_eq!(n.network, "lan");
        assert_eq!(n.mac_address, "52:54:00:ab:cd:01");
        assert_eq!(n.model, NicModel::E1000 as i32);
        assert_eq!(n.id, "nic1");
        for bad in ["52:54:00:ab:cd", "52-54-00-ab-cd-01", "52:54:00:ab:cd:0g"] {
            assert!(nic(&["--mac", bad]).is_err(), "{bad}");
        }
        assert!(nic(&["--model", "ne2k"]).is_err());
    }

    #[test]
    fn the_new_disk_is_the_one_the_vm_had_not() {
        let vm = |ids: &[&str]| VmStatusResponse {
            disks: ids
                .iter()
                .map(|i| DiskSpec {
                    id: (*i).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        assert_eq!(new_disk(&vm(&["disk0"]), &vm(&["disk0", "disk1"])), "disk1");
        assert_eq!(new_disk(&vm(&["disk0"]), &vm(&["disk0"])), "");
    }
}
