//! `lqctl seed`: write a NoCloud seed image, a drop-in for `cloud-localds`.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use limiquantix_cloudinit::iso9660::IsoOptions;
use limiquantix_cloudinit::seed::{Seed, write_replace};
use limiquantix_cloudinit::validate::{SchemaSource, ValidateOptions};
use limiquantix_cloudinit::vfat::VfatOptions;
use limiquantix_cloudinit::{DefaultUserData, ValidationError};

/// The instance-id `cloud-localds` writes when none is given.
const DEFAULT_INSTANCE_ID: &str = "iid-local01";

/// Image format of the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Filesystem {
    /// ISO 9660 with Joliet and Rock Ridge, volume id `cidata`.
    Iso9660,
    /// FAT, label `CIDATA`.
    Vfat,
}

/// Arguments of `lqctl seed`.
#[derive(Debug, clap::Args)]
#[command(
    disable_version_flag = true,
    after_help = "\
USER_DATA is a file, or - for standard input. Without USER_DATA, lqctl writes the default \
user-data for cloud images: hostname (--hostname, required then), user `admin` (--user) with \
passwordless sudo and the --ssh-key keys, password login only with --password-file/--password \
(stored as a SHA-512 crypt hash), qemu-guest-agent installed and started, no package upgrade.

Everything is validated before anything is written: the user-data kind (#cloud-config, #!, \
#include, #cloud-boothook, MIME multipart, gzip), cloud-config YAML as cloud-init reads it \
(YAML 1.1) and against cloud-init's installed schema, meta-data (a mapping), network-config \
(version 1 or 2), the host name (RFC 1123) and sizes (16 MiB per file, 32 MiB in all). On error \
lqctl exits non-zero and OUTPUT is left as it was. OUTPUT is replaced atomically, mode 0600 \
(and synced to disk with --fsync). \
Timestamps come from SOURCE_DATE_EPOCH when set.

Examples:
  lqctl seed seed.iso user-data.yaml meta-data.yaml
  lqctl seed -H web1 --ssh-key ~/.ssh/id_ed25519.pub seed.iso"
)]
pub struct SeedArgs {
    /// Image format.
    #[arg(short = 'f', long, value_enum, default_value_t = Filesystem::Iso9660)]
    filesystem: Filesystem,
    /// Host name: `local-hostname` in the generated meta-data, and the host name the default
    /// user-data sets.
    #[arg(short = 'H', long, value_name = "HOSTNAME")]
    hostname: Option<String>,
    /// network-config file (version 1 or 2) to include.
    #[arg(short = 'N', long, value_name = "FILE")]
    network_config: Option<PathBuf>,
    /// vendor-data file to include.
    #[arg(short = 'V', long, value_name = "FILE")]
    vendor_data: Option<PathBuf>,
    /// instance-id of the generated meta-data.
    #[arg(short = 'i', long, value_name = "ID", default_value = DEFAULT_INSTANCE_ID)]
    instance_id: String,
    /// Default user-data: an SSH public key file (repeatable; every non-empty, non-comment line
    /// is a key).
    #[arg(long = "ssh-key", value_name = "FILE")]
    ssh_keys: Vec<PathBuf>,
    /// Default user-data: the user to create.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Default user-data: a file whose first line is the password (hashed before it is written).
    #[arg(long, value_name = "FILE", conflicts_with = "password")]
    password_file: Option<PathBuf>,
    /// Default user-data: the password (visible to other local users in the process list; prefer
    /// --password-file).
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
    /// Sync OUTPUT and its directory to disk before exiting (cloud-localds does not).
    #[arg(long)]
    fsync: bool,
    /// cloud-init schema file to validate cloud-config against (default: the installed one).
    #[arg(long, value_name = "FILE", conflicts_with = "no_schema")]
    schema: Option<PathBuf>,
    /// Do not validate cloud-config against cloud-init's schema.
    #[arg(long)]
    no_schema: bool,
    /// The seed image to write.
    #[arg(value_name = "OUTPUT")]
    image: PathBuf,
    /// user-data file, or - for standard input; omitted: the default user-data.
    #[arg(value_name = "USER_DATA")]
    user_data: Option<String>,
    /// meta-data file; omitted: generated (instance-id and local-hostname).
    #[arg(value_name = "META_DATA")]
    meta_data: Option<PathBuf>,
}

/// Runs `lqctl seed`.
pub fn run(args: SeedArgs) -> anyhow::Result<()> {
    if let Some(dir) = cache_dir() {
        limiquantix_cloudinit::validate::outline_cache::set_dir(dir);
    }
    let user_data = match args.user_data.as_deref() {
        Some(source) => {
            if !args.ssh_keys.is_empty()
                || args.user.is_some()
                || args.password.is_some()
                || args.password_file.is_some()
            {
                bail!(
                    "--ssh-key, --user and --password build the default user-data; \
                     they cannot be combined with a USER_DATA file"
                );
            }
            read_source(source)?
        }
        None => default_user_data(&args)?,
    };
    let meta_data = args.meta_data.as_deref().map(read_file).transpose()?;
    if meta_data.is_some() && args.hostname.is_some() {
        bail!(
            "--hostname sets local-hostname in the generated meta-data; \
             it cannot be combined with a META_DATA file"
        );
    }
    let options = ValidateOptions {
        schema: match (&args.schema, args.no_schema) {
            (_, true) => SchemaSource::Disabled,
            (Some(path), _) => SchemaSource::Path(path.clone()),
            (None, false) => SchemaSource::Auto,
        },
    };
    let (seed, warnings) = Seed::from_user(
        args.instance_id.clone(),
        args.hostname.clone(),
        Some(user_data),
        meta_data,
        args.network_config.as_deref().map(read_file).transpose()?,
        args.vendor_data.as_deref().map(read_file).transpose()?,
        &options,
    )
    .map_err(one_line)?;
    for warning in warnings {
        eprintln!("lqctl: warning: {warning}");
    }
    let image = match args.filesystem {
        Filesystem::Iso9660 => seed.to_iso(&IsoOptions::from_env())?,
        Filesystem::Vfat => seed.to_vfat(&VfatOptions::default())?,
    };
    write_replace(&args.image, &image, args.fsync)?;
    Ok(())
}

/// The default user-data from `--hostname`, `--user`, `--ssh-key` and the password options.
fn default_user_data(args: &SeedArgs) -> anyhow::Result<Vec<u8>> {
    let Some(hostname) = &args.hostname else {
        bail!(
            "without USER_DATA, --hostname is required (it names the VM in the default user-data)"
        );
    };
    let mut user_data = DefaultUserData::new(hostname);
    if let Some(user) = &args.user {
        user_data = user_data.user(user);
    }
    for path in &args.ssh_keys {
        let text = String::from_utf8(read_file(path)?)
            .with_context(|| format!("{} is not UTF-8 text", path.display()))?;
        let keys: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        if keys.is_empty() {
            bail!("{} holds no SSH public key", path.display());
        }
        user_data = user_data.ssh_keys(keys);
    }
    let password = match (&args.password, &args.password_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(path)) => {
            let text = String::from_utf8(read_file(path)?)
                .with_context(|| format!("{} is not UTF-8 text", path.display()))?;
            let first = text.lines().next().unwrap_or_default().to_owned();
            if first.is_empty() {
                bail!(
                    "{} is empty: the first line is the password",
                    path.display()
                );
            }
            Some(first)
        }
        (None, None) => None,
    };
    if let Some(password) = password {
        user_data = user_data.password(&password)?;
    }
    user_data.validate().map_err(one_line)?;
    Ok(user_data.to_yaml()?)
}

/// A file, or standard input for `-`.
fn read_source(source: &str) -> anyhow::Result<Vec<u8>> {
    if source == "-" {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .context("reading user-data from standard input")?;
        Ok(data)
    } else {
        read_file(Path::new(source))
    }
}

fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn one_line(e: ValidationError) -> anyhow::Error {
    anyhow::anyhow!(e.to_string().replace('\n', " "))
}

/// Where lqctl keeps what it may reuse between runs (the schema's outline):
/// `$XDG_CACHE_HOME/limiquantix`, else `~/.cache/limiquantix`.
fn cache_dir() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("XDG_CACHE_HOME")
        .and_then(absolute)
        .or_else(|| absolute(std::env::var_os("HOME")?).map(|h| h.join(".cache")))
        .map(|d| d.join("limiquantix"))
}
