//! `lqctl pool ...`: the node's storage pools (local directories and NFS shares).

use clap::{Args, Subcommand};
use limiquantix_proto::v1::{
    InitStoragePoolRequest, ListStoragePoolFilesRequest, LocalDirPoolConfig, NfsPoolConfig,
    StoragePoolConfig, StoragePoolIdRequest, StoragePoolType,
};

use crate::ctx::Ctx;
use crate::daemon::CallExt as _;
use crate::output::{Format, print_structured};
use crate::storage_view::{FileView, PoolView, file_table, pool_details, pool_table};
use crate::units::{GIB, parse_size};

/// Storage pool commands.
#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// List the pools: type, state, size, free space, allocation, overcommit, volumes, VMs.
    #[command(visible_alias = "ls")]
    List,
    /// Show one pool in detail: its figures, its VMs, its NFS share.
    Show(PoolArg),
    /// Create a pool: a local directory (under the node's pool roots) or an NFS share.
    ///
    /// Without --nfs the pool is a local directory: --path (under one of the node's pool roots;
    /// by default a directory named after the pool in the first root) and optionally a size cap
    /// (--capacity, whole GiB). With --nfs SERVER:/EXPORT the node mounts the share (or adopts
    /// it where it is already mounted). Creating a pool that exists with the same settings
    /// changes nothing.
    Create(CreateArgs),
    /// Remove a pool (refused while it holds a VM's disk); a share the node mounted is unmounted,
    /// files left in a directory stay.
    #[command(visible_alias = "rm")]
    Delete(PoolArg),
    /// List the files of a pool (or of a directory in it).
    Files(FilesArgs),
}

/// One pool.
#[derive(Debug, Args)]
pub struct PoolArg {
    /// The pool's id.
    pub id: String,
}

/// `pool create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The pool's id (letters, digits, '.', '_' and '-').
    pub id: String,
    /// The directory on the node, under one of its pool roots.
    #[arg(long, value_name = "DIR", conflicts_with = "nfs")]
    pub path: Option<String>,
    /// A size cap (e.g. 20G, 1T): volumes that would take more are refused. Whole GiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_capacity_gib, conflicts_with = "nfs")]
    pub capacity: Option<u64>,
    /// An NFS share: SERVER:/EXPORT, or [IPV6]:/EXPORT.
    #[arg(long, value_name = "SERVER:/EXPORT", value_parser = parse_nfs_source)]
    pub nfs: Option<NfsSource>,
    /// The NFS version (3, 4, 4.0, 4.1, 4.2) [default: negotiated].
    #[arg(long, value_name = "V", requires = "nfs")]
    pub nfs_version: Option<String>,
    /// Extra NFS mount options, comma-separated (e.g. soft,timeo=100).
    #[arg(long, value_name = "OPTS", requires = "nfs")]
    pub nfs_options: Option<String>,
    /// Where the share is mounted on the node, under one of its pool roots [default: a
    /// directory named after the pool in the first root].
    #[arg(long, value_name = "DIR", requires = "nfs")]
    pub mount_point: Option<String>,
}

/// `pool files`.
#[derive(Debug, Args)]
pub struct FilesArgs {
    /// The pool's id.
    pub id: String,
    /// A directory in the pool, relative to it [default: the pool's top].
    pub path: Option<String>,
}

/// An NFS share as `--nfs` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NfsSource {
    /// The server: a host name or an address (an IPv6 one without its brackets).
    pub server: String,
    /// The exported path (absolute).
    pub export: String,
}

/// Parses `SERVER:/EXPORT` (split at the first `:/`) or `[IPV6]:/EXPORT`.
pub fn parse_nfs_source(s: &str) -> Result<NfsSource, String> {
    let bad = |why: &str| {
        format!("{why}: write SERVER:/EXPORT, e.g. nas.example:/srv/vms or [2001:db8::10]:/srv/vms")
    };
    let (server, export) = match s.strip_prefix('[') {
        Some(rest) => {
            let (addr, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("the '[' of the IPv6 address is never closed"))?;
            let export = after
                .strip_prefix(':')
                .filter(|e| e.starts_with('/'))
                .ok_or_else(|| bad("no ':/' right after the bracketed address"))?;
            (addr, export)
        }
        None => {
            let at = s
                .find(":/")
                .ok_or_else(|| bad("no ':/' between the server and the export"))?;
            (&s[..at], &s[at + 1..])
        }
    };
    if server.is_empty() {
        return Err(bad("the server is missing"));
    }
    Ok(NfsSource {
        server: server.to_owned(),
        export: export.to_owned(),
    })
}

/// Parses a pool's size cap into whole GiB (the API's unit).
pub fn parse_capacity_gib(s: &str) -> Result<u64, String> {
    let bytes = parse_size(s)?;
    if !bytes.is_multiple_of(GIB) {
        return Err(format!(
            "{s:?} is not a whole number of GiB (the daemon takes a pool's cap in GiB): use e.g. {}G",
            bytes.div_ceil(GIB)
        ));
    }
    Ok(bytes / GIB)
}

/// The InitStoragePool request `pool create` sends.
fn init_request(a: CreateArgs) -> InitStoragePoolRequest {
    let (kind, config) = match a.nfs {
        Some(share) => (
            StoragePoolType::Nfs,
            StoragePoolConfig {
                nfs: Some(NfsPoolConfig {
                    server: share.server,
                    export_path: share.export,
                    version: a.nfs_version.unwrap_or_default(),
                    options: a.nfs_options.unwrap_or_default(),
                    mount_point: a.mount_point.unwrap_or_default(),
                }),
                ..Default::default()
            },
        ),
        None => (
            StoragePoolType::LocalDir,
            StoragePoolConfig {
                local: Some(LocalDirPoolConfig {
                    path: a.path.unwrap_or_default(),
                    capacity_gib: a.capacity,
                }),
                ..Default::default()
            },
        ),
    };
    InitStoragePoolRequest {
        pool_id: a.id,
        r#type: kind as i32,
        config: Some(config),
    }
}

/// Runs a pool command.
pub async fn run(ctx: &Ctx, command: PoolCommand) -> anyhow::Result<()> {
    let mut node = ctx.daemon.node();
    match command {
        PoolCommand::List => {
            let pools = node.list_storage_pools(()).await.or_fail(&ctx.daemon)?;
            let views: Vec<PoolView> = pools.pools.iter().map(PoolView::from).collect();
            match ctx.format {
                Format::Table if views.is_empty() => {
                    eprintln!("no storage pools (create one with: lqctl pool create ID)");
                }
                Format::Table => print!("{}", pool_table(&views)),
                f => print_structured(&views, f)?,
            }
            Ok(())
        }
        PoolCommand::Show(a) => {
            let pool = node
                .get_storage_pool_info(StoragePoolIdRequest { pool_id: a.id })
                .await
                .or_fail(&ctx.daemon)?;
            print_pool(ctx, &PoolView::from(&pool))
        }
        PoolCommand::Create(a) => {
            let pool = node
                .init_storage_pool(init_request(a))
                .await
                .or_fail(&ctx.daemon)?;
            print_pool(ctx, &PoolView::from(&pool))
        }
        PoolCommand::Delete(a) => {
            node.destroy_storage_pool(StoragePoolIdRequest {
                pool_id: a.id.clone(),
            })
            .await
            .or_fail(&ctx.daemon)?;
            match ctx.format {
                Format::Table => println!("{}  deleted", a.id),
                f => print_structured(&serde_json::json!({ "id": a.id, "result": "deleted" }), f)?,
            }
            Ok(())
        }
        PoolCommand::Files(a) => files(ctx, a).await,
    }
}

fn print_pool(ctx: &Ctx, view: &PoolView) -> anyhow::Result<()> {
    match ctx.format {
        Format::Table => print!("{}", pool_details(view)),
        f => print_structured(view, f)?,
    }
    Ok(())
}

async fn files(ctx: &Ctx, a: FilesArgs) -> anyhow::Result<()> {
    let listing = ctx
        .daemon
        .node()
        .list_storage_pool_files(ListStoragePoolFilesRequest {
            pool_id: a.id.clone(),
            path: a.path.clone().unwrap_or_default(),
        })
        .await
        .or_fail(&ctx.daemon)?;
    let views: Vec<FileView> = listing.entries.iter().map(FileView::from).collect();
    match ctx.format {
        Format::Table if views.is_empty() => {
            let place = match a.path.as_deref().filter(|p| !p.is_empty()) {
                Some(p) => format!("{p} of pool {}", a.id),
                None => format!("pool {}", a.id),
            };
            eprintln!("no files in {place}");
        }
        Format::Table => print!("{}", file_table(&views)),
        f => print_structured(&views, f)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: PoolCommand,
    }

    fn create(args: &str) -> Result<InitStoragePoolRequest, String> {
        let argv = ["lqctl", "create"]
            .into_iter()
            .chain(args.split_whitespace());
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            PoolCommand::Create(a) => Ok(init_request(a)),
            other => panic!("{other:?}"),
        }
    }

    fn share(server: &str, export: &str) -> NfsSource {
        NfsSource {
            server: server.into(),
            export: export.into(),
        }
    }

    #[test]
    fn nfs_sources_split_at_the_first_colon_slash() {
        let ok = |s| parse_nfs_source(s).unwrap();
        assert_eq!(ok("nas.example:/srv/vms"), share("nas.example", "/srv/vms"));
        assert_eq!(ok("192.0.2.10:/"), share("192.0.2.10", "/"));
        assert_eq!(ok("nas:/a:/b"), share("nas", "/a:/b"));
        assert_eq!(ok("[2001:db8::10]:/srv"), share("2001:db8::10", "/srv"));
        assert_eq!(ok("[fe80::1%eth0]:/x/y"), share("fe80::1%eth0", "/x/y"));
        let err = |s| parse_nfs_source(s).unwrap_err();
        assert!(err("nas.example").starts_with("no ':/' between the server and the export"));
        assert!(err("nas:srv").starts_with("no ':/'"));
        assert!(err(":/srv").starts_with("the server is missing"));
        assert!(err("[2001:db8::10:/srv").starts_with("the '[' of the IPv6 address"));
        assert!(err("[2001:db8::10]/srv").starts_with("no ':/' right after"));
        assert!(err("[]:/srv").starts_with("the server is missing"));
        assert!(err("x").ends_with("e.g. nas.example:/srv/vms or [2001:db8::10]:/srv/vms"));
    }

    #[test]
    fn capacities_are_whole_gib() {
        assert_eq!(parse_capacity_gib("20G"), Ok(20));
        assert_eq!(parse_capacity_gib("1T"), Ok(1024));
        assert_eq!(parse_capacity_gib("2048M"), Ok(2));
        let e = parse_capacity_gib("512M").unwrap_err();
        assert!(
            e.contains("not a whole number of GiB") && e.ends_with("use e.g. 1G"),
            "{e}"
        );
        assert!(parse_capacity_gib("20").unwrap_err().contains("no unit"));
    }

    #[test]
    fn local_pools_send_path_and_capacity() {
        let r = create("fast --path /srv/pools/fast --capacity 20G").unwrap();
        assert_eq!(r.pool_id, "fast");
        assert_eq!(r.r#type, StoragePoolType::LocalDir as i32);
        let local = r.config.unwrap().local.unwrap();
        assert_eq!(local.path, "/srv/pools/fast");
        assert_eq!(local.capacity_gib, Some(20));
        let r = create("plain").unwrap();
        let local = r.config.unwrap().local.unwrap();
        assert_eq!((local.path.as_str(), local.capacity_gib), ("", None));
        let e = create("x --capacity 1500M").unwrap_err();
        assert!(e.contains("not a whole number of GiB"), "{e}");
    }

    #[test]
    fn nfs_pools_send_the_share() {
        let r = create(
            "shared --nfs [2001:db8::10]:/srv/vms --nfs-version 4.1 --nfs-options soft,timeo=100 \
             --mount-point /mnt/shared",
        )
        .unwrap();
        assert_eq!(r.r#type, StoragePoolType::Nfs as i32);
        let config = r.config.unwrap();
        assert_eq!(config.local, None);
        let nfs = config.nfs.unwrap();
        assert_eq!(
            (
                nfs.server.as_str(),
                nfs.export_path.as_str(),
                nfs.version.as_str(),
                nfs.options.as_str(),
                nfs.mount_point.as_str()
            ),
            (
                "2001:db8::10",
                "/srv/vms",
                "4.1",
                "soft,timeo=100",
                "/mnt/shared"
            )
        );
        for bad in [
            "x --nfs nas:/e --path /p",
            "x --nfs nas:/e --capacity 1G",
            "x --nfs-version 4",
            "x --mount-point /mnt",
            "x --nfs nas",
        ] {
            assert!(create(bad).is_err(), "{bad}");
        }
        let e = create("x --nfs nas:/e --capacity 1G").unwrap_err();
        assert!(e.contains("cannot be used with"), "{e}");
    }
}
