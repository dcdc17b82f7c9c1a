//! `lqctl volume ...`: the volumes of a storage pool.

use anyhow::anyhow;
use clap::{ArgGroup, Args, Subcommand};
use limiquantix_proto::v1::{
    CloneVolumeRequest, CreateVolumeRequest, CreateVolumeSnapshotRequest, ListVolumesRequest,
    ResizeVolumeRequest, VolumeIdRequest, VolumeInfoResponse, VolumeSourceType,
};

use crate::ctx::Ctx;
use crate::daemon::CallExt as _;
use crate::output::{Format, print_structured};
use crate::storage_view::{VolumeView, volume_details, volume_table};
use crate::units::{human_bytes, parse_size};

/// Volume commands. A volume is named by its pool and its id.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List a pool's volumes: size, allocation, format, VM, backing image, snapshots.
    #[command(visible_alias = "ls")]
    List(PoolArg),
    /// Create a volume: empty, an overlay on an image, or a copy of a volume or snapshot.
    ///
    /// --size alone makes an empty (thin qcow2) volume. --from-image makes a thin overlay on an
    /// image of the node's library; --from-volume a full, independent copy of a volume of the
    /// same pool; --from-snapshot VOL@SNAP a full copy of what a volume held at a snapshot. From
    /// a source the size is the source's unless --size asks for more.
    Create(CreateArgs),
    /// Grow a volume to SIZE, or by +SIZE (volumes never shrink).
    Resize(ResizeArgs),
    /// Copy a volume into a new, independent volume of the same pool.
    Clone(CloneArgs),
    /// Delete a volume (refused while it is a disk of a VM).
    #[command(visible_alias = "rm")]
    Delete(VolumeArg),
    /// Take a snapshot of a volume (a qcow2 internal snapshot).
    Snapshot(SnapshotArgs),
    /// How to attach a volume: its path and the QEMU -blockdev JSON of it.
    AttachInfo(VolumeArg),
}

/// One pool.
#[derive(Debug, Args)]
pub struct PoolArg {
    /// The pool's id.
    pub pool: String,
}

/// One volume.
#[derive(Debug, Args)]
pub struct VolumeArg {
    /// The pool's id.
    pub pool: String,
    /// The volume's id.
    pub id: String,
}

/// `volume create`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").args(["from_image", "from_volume", "from_snapshot"])))]
pub struct CreateArgs {
    /// The pool's id.
    pub pool: String,
    /// The new volume's id (letters, digits, '.', '_' and '-').
    pub id: String,
    /// Its size (e.g. 10G, 512M); needed for an empty volume.
    #[arg(long, value_name = "SIZE", value_parser = parse_volume_size, required_unless_present = "source")]
    pub size: Option<u64>,
    /// An overlay on this image: its file name in the node's library, or an absolute path on
    /// the node (in the images directory or a pool).
    #[arg(long, value_name = "IMAGE")]
    pub from_image: Option<String>,
    /// A full copy of this volume of the same pool.
    #[arg(long, value_name = "VOL")]
    pub from_volume: Option<String>,
    /// A full copy of a volume's snapshot: VOLUME@SNAPSHOT.
    #[arg(long, value_name = "VOL@SNAP", value_parser = parse_snapshot_ref)]
    pub from_snapshot: Option<SnapshotRef>,
}

/// `volume resize`.
#[derive(Debug, Args)]
pub struct ResizeArgs {
    /// The pool's id.
    pub pool: String,
    /// The volume's id.
    pub id: String,
    /// The new size (e.g. 20G), or +SIZE to grow by that much (e.g. +10G).
    #[arg(value_parser = parse_new_size, allow_hyphen_values = true)]
    pub size: NewSize,
}

/// `volume clone`.
#[derive(Debug, Args)]
pub struct CloneArgs {
    /// The pool's id.
    pub pool: String,
    /// The volume to copy.
    pub source: String,
    /// The new volume's id.
    pub dest: String,
}

/// `volume snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The pool's id.
    pub pool: String,
    /// The volume's id.
    pub id: String,
    /// The snapshot's name (letters, digits, '.', '_' and '-').
    pub snapshot: String,
}

/// A snapshot of a volume: `VOLUME@SNAPSHOT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRef {
    /// The volume.
    pub volume: String,
    /// The snapshot.
    pub snapshot: String,
}

impl std::fmt::Display for SnapshotRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.volume, self.snapshot)
    }
}

/// The size `volume resize` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewSize {
    /// This many bytes.
    To(u64),
    /// The current size plus this many bytes.
    GrowBy(u64),
}

/// Parses `VOLUME@SNAPSHOT`.
pub fn parse_snapshot_ref(s: &str) -> Result<SnapshotRef, String> {
    match s.split_once('@') {
        Some((volume, snapshot))
            if !volume.is_empty() && !snapshot.is_empty() && !snapshot.contains('@') =>
        {
            Ok(SnapshotRef {
                volume: volume.to_owned(),
                snapshot: snapshot.to_owned(),
            })
        }
        _ => Err(format!(
            "{s:?} names no snapshot: write VOLUME@SNAPSHOT, e.g. data@before-upgrade"
        )),
    }
}

/// Parses a volume size: a size with a unit, a whole number of 512-byte sectors.
pub fn parse_volume_size(s: &str) -> Result<u64, String> {
    let bytes = parse_size(s)?;
    if !bytes.is_multiple_of(512) {
        return Err(format!(
            "size {s:?} is not a whole number of 512-byte sectors: use e.g. 10G or 512M"
        ));
    }
    Ok(bytes)
}

/// Parses `volume resize`'s size: `SIZE` or `+SIZE`; `-SIZE` is refused (volumes only grow).
pub fn parse_new_size(s: &str) -> Result<NewSize, String> {
    let t = s.trim();
    if let Some(delta) = t.strip_prefix('+') {
        return parse_volume_size(delta).map(NewSize::GrowBy);
    }
    if t.starts_with('-') {
        return Err(format!(
            "{s:?} would shrink the volume: volumes only grow (write the new size, or +SIZE)"
        ));
    }
    parse_volume_size(t).map(NewSize::To)
}

/// The CreateVolume request `volume create` sends.
fn create_request(a: CreateArgs) -> CreateVolumeRequest {
    let (source_type, source_id) = match (a.from_image, a.from_volume, a.from_snapshot) {
        (Some(image), _, _) => (VolumeSourceType::VolumeSourceImage, image),
        (_, Some(volume), _) => (VolumeSourceType::VolumeSourceClone, volume),
        (_, _, Some(snap)) => (VolumeSourceType::VolumeSourceSnapshot, snap.to_string()),
        (None, None, None) => (VolumeSourceType::VolumeSourceEmpty, String::new()),
    };
    CreateVolumeRequest {
        pool_id: a.pool,
        volume_id: a.id,
        size_bytes: a.size.unwrap_or(0),
        source_type: source_type as i32,
        source_id,
    }
}

/// Runs a volume command.
pub async fn run(ctx: &Ctx, command: VolumeCommand) -> anyhow::Result<()> {
    let mut node = ctx.daemon.node();
    match command {
        VolumeCommand::List(a) => {
            let views: Vec<VolumeView> = list(ctx, &a.pool).await?.iter().map(Into::into).collect();
            match ctx.format {
                Format::Table if views.is_empty() => eprintln!(
                    "no volumes in pool {} (create one with: lqctl volume create {} ID --size 10G)",
                    a.pool, a.pool
                ),
                Format::Table => print!("{}", volume_table(&views)),
                f => print_structured(&views, f)?,
            }
            Ok(())
        }
        VolumeCommand::Create(a) => {
            let v = node
                .create_volume(create_request(a))
                .await
                .or_fail(&ctx.daemon)?;
            let view = VolumeView::from(&v);
            match ctx.format {
                Format::Table => print!("{}", volume_details(&view)),
                f => print_structured(&view, f)?,
            }
            Ok(())
        }
        VolumeCommand::Resize(a) => resize(ctx, a).await,
        VolumeCommand::Clone(a) => {
            node.clone_volume(CloneVolumeRequest {
                pool_id: a.pool.clone(),
                source_volume_id: a.source.clone(),
                dest_volume_id: a.dest.clone(),
            })
            .await
            .or_fail(&ctx.daemon)?;
            done(ctx, &a.pool, &a.dest, &format!("cloned from {}", a.source))
        }
        VolumeCommand::Delete(a) => {
            node.delete_volume(volume_id(&a))
                .await
                .or_fail(&ctx.daemon)?;
            done(ctx, &a.pool, &a.id, "deleted")
        }
        VolumeCommand::Snapshot(a) => snapshot(ctx, a).await,
        VolumeCommand::AttachInfo(a) => attach_info(ctx, a).await,
    }
}

fn volume_id(a: &VolumeArg) -> VolumeIdRequest {
    VolumeIdRequest {
        pool_id: a.pool.clone(),
        volume_id: a.id.clone(),
    }
}

/// Prints `ID  RESULT` (or `{pool, volume, result}`).
fn done(ctx: &Ctx, pool: &str, id: &str, result: &str) -> anyhow::Result<()> {
    match ctx.format {
        Format::Table => println!("{id}  {result}"),
        f => print_structured(
            &serde_json::json!({ "pool": pool, "volume": id, "result": result }),
            f,
        )?,
    }
    Ok(())
}

async fn list(ctx: &Ctx, pool: &str) -> anyhow::Result<Vec<VolumeInfoResponse>> {
    let answer = ctx
        .daemon
        .node()
        .list_volumes(ListVolumesRequest {
            pool_id: pool.to_owned(),
        })
        .await
        .or_fail(&ctx.daemon)?;
    Ok(answer.volumes)
}

async fn resize(ctx: &Ctx, a: ResizeArgs) -> anyhow::Result<()> {
    let new_size = match a.size {
        NewSize::To(n) => n,
        NewSize::GrowBy(delta) => {
            let current = list(ctx, &a.pool)
                .await?
                .into_iter()
                .find(|v| v.volume_id == a.id)
                .ok_or_else(|| anyhow!("volume {:?} not found in pool {:?}", a.id, a.pool))?;
            current
                .size_bytes
                .checked_add(delta)
                .ok_or_else(|| anyhow!("{} + {delta} bytes is too large", current.size_bytes))?
        }
    };
    ctx.daemon
        .node()
        .resize_volume(ResizeVolumeRequest {
            pool_id: a.pool.clone(),
            volume_id: a.id.clone(),
            new_size_bytes: new_size,
        })
        .await
        .or_fail(&ctx.daemon)?;
    match ctx.format {
        Format::Table => println!("{}  resized to {}", a.id, human_bytes(new_size)),
        f => print_structured(
            &serde_json::json!({
                "pool": a.pool, "volume": a.id, "size_bytes": new_size, "result": "resized",
            }),
            f,
        )?,
    }
    Ok(())
}

async fn snapshot(ctx: &Ctx, a: SnapshotArgs) -> anyhow::Result<()> {
    ctx.daemon
        .node()
        .create_volume_snapshot(CreateVolumeSnapshotRequest {
            pool_id: a.pool.clone(),
            volume_id: a.id.clone(),
            snapshot_id: a.snapshot.clone(),
        })
        .await
        .or_fail(&ctx.daemon)?;
    match ctx.format {
        Format::Table => println!("{}@{}  created", a.id, a.snapshot),
        f => print_structured(
            &serde_json::json!({
                "pool": a.pool, "volume": a.id, "snapshot": a.snapshot, "result": "created",
            }),
            f,
        )?,
    }
    Ok(())
}

async fn attach_info(ctx: &Ctx, a: VolumeArg) -> anyhow::Result<()> {
    let info = ctx
        .daemon
        .node()
        .get_volume_attach_info(volume_id(&a))
        .await
        .or_fail(&ctx.daemon)?;
    // The daemon puts QEMU `-blockdev` JSON in the field upstream named `disk_xml`.
    let blockdev = serde_json::from_str::<serde_json::Value>(&info.disk_xml)
        .unwrap_or_else(|_| serde_json::Value::String(info.disk_xml.clone()));
    match ctx.format {
        Format::Table => {
            println!("volume:   {}", info.volume_id);
            println!("path:     {}", info.path);
            println!("blockdev: {}", info.disk_xml.trim());
        }
        f => print_structured(
            &serde_json::json!({
                "pool": a.pool, "volume": info.volume_id, "path": info.path, "blockdev": blockdev,
            }),
            f,
        )?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{GIB, MIB};
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: VolumeCommand,
    }

    fn parse(args: &str) -> Result<VolumeCommand, String> {
        let argv = ["lqctl"].into_iter().chain(args.split_whitespace());
        Cli::try_parse_from(argv)
            .map(|c| c.command)
            .map_err(|e| e.to_string())
    }

    fn create(args: &str) -> Result<CreateVolumeRequest, String> {
        match parse(&format!("create {args}"))? {
            VolumeCommand::Create(a) => Ok(create_request(a)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn snapshot_refs() {
        assert_eq!(
            parse_snapshot_ref("data@before-upgrade"),
            Ok(SnapshotRef {
                volume: "data".into(),
                snapshot: "before-upgrade".into()
            })
        );
        for bad in ["data", "@snap", "data@", "a@b@c", ""] {
            let e = parse_snapshot_ref(bad).unwrap_err();
            assert!(e.contains("write VOLUME@SNAPSHOT"), "{bad}: {e}");
        }
    }

    #[test]
    fn sizes_and_growth() {
        assert_eq!(parse_new_size("20G"), Ok(NewSize::To(20 * GIB)));
        assert_eq!(parse_new_size("+10G"), Ok(NewSize::GrowBy(10 * GIB)));
        assert_eq!(parse_new_size("+512M"), Ok(NewSize::GrowBy(512 * MIB)));
        assert!(
            parse_new_size("-1G")
                .unwrap_err()
                .contains("volumes only grow")
        );
        assert!(parse_new_size("+").is_err());
        assert!(parse_new_size("+10").unwrap_err().contains("no unit"));
        assert!(parse_new_size("0G").is_err());
        assert_eq!(parse_volume_size("1.5K"), Ok(1536));
        let e = parse_volume_size("1000B").unwrap_err();
        assert!(e.contains("512-byte sectors"), "{e}");
        // Through clap: `-1G` reaches the parser instead of being taken for an option.
        let e = parse("resize p v -1G").unwrap_err();
        assert!(e.contains("volumes only grow"), "{e}");
        match parse("resize p v +1G").unwrap() {
            VolumeCommand::Resize(a) => assert_eq!(a.size, NewSize::GrowBy(GIB)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_source_or_a_size() {
        let r = create("p v --size 1G").unwrap();
        assert_eq!(
            (r.pool_id.as_str(), r.volume_id.as_str(), r.size_bytes),
            ("p", "v", GIB)
        );
        assert_eq!(r.source_type, VolumeSourceType::VolumeSourceEmpty as i32);
        assert_eq!(r.source_id, "");
        let r = create("p v --from-image debian-12").unwrap();
        assert_eq!(r.source_type, VolumeSourceType::VolumeSourceImage as i32);
        assert_eq!((r.source_id.as_str(), r.size_bytes), ("debian-12", 0));
        let r = create("p v --from-volume data --size 20G").unwrap();
        assert_eq!(r.source_type, VolumeSourceType::VolumeSourceClone as i32);
        assert_eq!((r.source_id.as_str(), r.size_bytes), ("data", 20 * GIB));
        let r = create("p v --from-snapshot data@s1").unwrap();
        assert_eq!(r.source_type, VolumeSourceType::VolumeSourceSnapshot as i32);
        assert_eq!(r.source_id, "data@s1");

        let e = create("p v").unwrap_err();
        assert!(e.contains("--size <SIZE>"), "{e}");
        let e = create("p v --from-image i --from-volume data").unwrap_err();
        assert!(e.contains("cannot be used with"), "{e}");
        let e = create("p v --from-snapshot data").unwrap_err();
        assert!(e.contains("write VOLUME@SNAPSHOT"), "{e}");
        let e = create("p v --size 1000B").unwrap_err();
        assert!(e.contains("512-byte sectors"), "{e}");
    }
}
