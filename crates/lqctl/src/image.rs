//! `lqctl image ...`: the node's image library.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use limiquantix_proto::v1::{
    DeleteImageRequest, ImportImageProgress, ImportImageRequest, UploadImageHeader,
    UploadImageRequest, upload_image_request::Part,
};
use tokio::io::AsyncReadExt as _;

use crate::ctx::Ctx;
use crate::daemon::CallExt as _;
use crate::output::{Format, print_structured};
use crate::units::human_bytes;
use crate::view::{ImageView, image_table};

/// Upload chunk size (the daemon accepts up to 1 MiB per message).
const CHUNK: usize = 1 << 20;

/// Image commands.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Add an image to the node's library, from a local file or an http(s) URL.
    ///
    /// A local file is streamed to the daemon; a URL is downloaded by the daemon itself, and an
    /// interrupted download resumes where it stopped (run the same import again). The image
    /// becomes visible only once its sha256 (when given) matches and its format is accepted
    /// (qcow2, raw, ISO); otherwise nothing is kept.
    Import(ImportArgs),
    /// List the images of the node's library.
    #[command(visible_alias = "ls")]
    List,
    /// Remove an image (refused while a VM's disk is an overlay on it).
    #[command(visible_alias = "rm")]
    Delete(DeleteArgs),
}

/// `image import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A local file, or an http:// or https:// URL.
    pub source: String,
    /// The image's name [default: the file name].
    #[arg(long)]
    pub name: Option<String>,
    /// The expected sha256 (64 hex digits).
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
}

/// `image delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The image's name (its extension may be left out).
    pub name: String,
}

/// Runs an image command.
pub async fn run(ctx: &Ctx, command: ImageCommand) -> anyhow::Result<()> {
    match command {
        ImageCommand::Import(a) => import(ctx, a).await,
        ImageCommand::List => {
            let images = ctx
                .daemon
                .node()
                .list_images(())
                .await
                .or_fail(&ctx.daemon)?;
            let views: Vec<ImageView> = images.images.iter().map(ImageView::from).collect();
            match ctx.format {
                Format::Table if views.is_empty() => {
                    eprintln!("no images (add one with: lqctl image import FILE|URL)");
                }
                Format::Table => print!("{}", image_table(&views)),
                f => print_structured(&views, f)?,
            }
            Ok(())
        }
        ImageCommand::Delete(a) => {
            let r = ctx
                .daemon
                .images()
                .delete_image(DeleteImageRequest {
                    name: a.name.clone(),
                })
                .await
                .or_fail(&ctx.daemon)?;
            let name = r.image.map_or(a.name, |i| i.name);
            match ctx.format {
                Format::Table => println!("{name}  deleted"),
                f => {
                    print_structured(&serde_json::json!({ "name": name, "result": "deleted" }), f)?
                }
            }
            Ok(())
        }
    }
}

fn progress_bar(total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::new_spinner(),
    };
    let template = if total.is_some() {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}"
    } else {
        "{spinner} {msg} {bytes} {binary_bytes_per_sec}"
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

async fn import(ctx: &Ctx, a: ImportArgs) -> anyhow::Result<()> {
    let lower = a.source.to_ascii_lowercase();
    let result = if lower.starts_with("http://") || lower.starts_with("https://") {
        download(ctx, &a).await?
    } else {
        upload(ctx, &a).await?
    };
    let image = result
        .image
        .clone()
        .ok_or_else(|| anyhow!("the daemon finished the import without describing the image"))?;
    match ctx.format {
        Format::Table => {
            let resumed = if result.resumed_from > 0 {
                format!("  (resumed at {})", human_bytes(result.resumed_from))
            } else {
                String::new()
            };
            println!(
                "{}  {}  {}  sha256:{}{resumed}",
                image.name,
                image.format,
                human_bytes(image.size_bytes),
                result.sha256
            );
        }
        f => print_structured(
            &serde_json::json!({
                "name": image.name,
                "format": image.format,
                "size_bytes": image.size_bytes,
                "path": image.path,
                "sha256": result.sha256,
                "resumed_from": result.resumed_from,
            }),
            f,
        )?,
    }
    Ok(())
}

async fn download(ctx: &Ctx, a: &ImportArgs) -> anyhow::Result<ImportImageProgress> {
    let mut stream = ctx
        .daemon
        .images()
        .import_image(ImportImageRequest {
            url: a.source.clone(),
            name: a.name.clone().unwrap_or_default(),
            sha256: a.sha256.clone().unwrap_or_default(),
        })
        .await
        .or_fail(&ctx.daemon)?;
    let mut bar: Option<ProgressBar> = None;
    let result = loop {
        let msg = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => break Err(anyhow!("the daemon ended the import without a result")),
            Err(s) => break Err(ctx.daemon.error(&s)),
        };
        if msg.image.is_some() {
            break Ok(msg);
        }
        let total = (msg.bytes_total > 0).then_some(msg.bytes_total);
        let b = bar.get_or_insert_with(|| {
            let b = progress_bar(total);
            b.set_message("downloading");
            b
        });
        if let Some(t) = total {
            b.set_length(t);
        }
        b.set_position(msg.bytes_done);
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    result
}

async fn upload(ctx: &Ctx, a: &ImportArgs) -> anyhow::Result<ImportImageProgress> {
    let path = Path::new(&a.source);
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let meta = file.metadata().await?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let name = match &a.name {
        Some(n) => n.clone(),
        None => path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                anyhow!(
                    "cannot take an image name from {}: pass --name",
                    path.display()
                )
            })?,
    };
    let size = meta.len();
    let bar = progress_bar(Some(size));
    bar.set_message("uploading");
    let (tx, rx) = tokio::sync::mpsc::channel::<UploadImageRequest>(4);
    let header = UploadImageRequest {
        part: Some(Part::Header(UploadImageHeader {
            name,
            sha256: a.sha256.clone().unwrap_or_default(),
            size_bytes: size,
        })),
    };
    let progress = bar.clone();
    let reader = tokio::spawn(async move {
        if tx.send(header).await.is_err() {
            return Ok(());
        }
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            buf.truncate(n);
            progress.inc(n as u64);
            let chunk = UploadImageRequest {
                part: Some(Part::Chunk(buf)),
            };
            if tx.send(chunk).await.is_err() {
                // The daemon ended the call; its answer says why.
                return Ok(());
            }
        }
    });
    let answer = ctx
        .daemon
        .images()
        .upload_image(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    bar.finish_and_clear();
    reader
        .await
        .map_err(|e| anyhow!("the upload task failed: {e}"))?
        .with_context(|| format!("cannot read {}", path.display()))?;
    answer.or_fail(&ctx.daemon)
}
