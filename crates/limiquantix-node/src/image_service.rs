//! gRPC glue: `limiquantix.node.v1.NodeImageService` over the [`ImageLibrary`], and the
//! `ListImages` answer of `NodeDaemonService`.
//!
//! Mount with `routes.add_service(image_service::server(library, in_use_from(backend)))`;
//! `in_use` returns the files VMs use (overlay backing files, disk paths, CD-ROM media), which
//! `DeleteImage` refuses to remove.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use limiquantix_proto::v1::node_image_service_server::{NodeImageService, NodeImageServiceServer};
use limiquantix_proto::v1::{
    DeleteImageRequest, DeleteImageResponse, ImageInfo, ImportImageProgress, ImportImageRequest,
    ListImagesResponse, UploadImageRequest, upload_image_request,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::images::{
    ImageEntry, ImageError, ImageLibrary, ImportOutcome, ImportProgress, ImportRequest,
    ImportSource, stem,
};

/// Largest upload chunk accepted, and the gRPC message limit of the service (chunk + framing).
pub const MAX_CHUNK: usize = 1 << 20;

/// A source of the files VMs use now (absolute paths). An error makes `DeleteImage` fail closed.
pub type InUse = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<Vec<PathBuf>, Status>> + Send>> + Send + Sync,
>;

/// The [`InUse`] of a VM backend: every VM's overlay backing files, disk paths and CD-ROM media.
pub fn in_use_from<B: limiquantix_vm::VmBackend>(backend: Arc<B>) -> InUse {
    use limiquantix_vm::model::DiskSource;
    Arc::new(move || {
        let backend = backend.clone();
        Box::pin(async move {
            let entries = backend.list().await.map_err(|e| {
                Status::unavailable(format!("cannot tell which images VMs use: {e}"))
            })?;
            let mut paths = Vec::new();
            for def in entries.iter().map(|e| &e.definition) {
                for disk in &def.disks {
                    match &disk.source {
                        DiskSource::Overlay { backing, .. } => paths.push(backing.clone()),
                        DiskSource::Path { path } => paths.push(path.clone()),
                        DiskSource::Blank { .. } => {}
                    }
                }
                paths.extend(def.cdroms.iter().filter_map(|c| c.path.clone()));
            }
            Ok(paths)
        })
    })
}

/// The `NodeImageService` implementation.
#[derive(Clone)]
pub struct ImageService {
    library: ImageLibrary,
    in_use: InUse,
}

/// Builds the tonic server of `NodeImageService`, ready for `add_service`.
pub fn server(library: ImageLibrary, in_use: InUse) -> NodeImageServiceServer<ImageService> {
    NodeImageServiceServer::new(ImageService { library, in_use })
        .max_decoding_message_size(MAX_CHUNK + 64 * 1024)
}

/// The answer to `NodeDaemonService.ListImages` for the library at `images_dir`.
pub async fn list_images(images_dir: &std::path::Path) -> Result<ListImagesResponse, Status> {
    let dir = images_dir.to_path_buf();
    let images = tokio::task::spawn_blocking(move || ImageLibrary::open(dir)?.list())
        .await
        .map_err(|e| Status::internal(format!("image listing task failed: {e}")))??;
    Ok(ListImagesResponse {
        images: images.iter().map(image_info).collect(),
    })
}

/// The wire form of an image: its id is the name without a known extension.
pub fn image_info(entry: &ImageEntry) -> ImageInfo {
    ImageInfo {
        image_id: stem(&entry.name).to_owned(),
        name: entry.name.clone(),
        path: entry.path.display().to_string(),
        size_bytes: entry.size_bytes,
        format: entry.format.as_str().to_owned(),
    }
}

fn progress_message(p: &ImportProgress) -> ImportImageProgress {
    ImportImageProgress {
        bytes_done: p.done,
        bytes_total: p.total.unwrap_or(0),
        bytes_per_second: p.bytes_per_sec,
        ..Default::default()
    }
}

fn final_message(o: &ImportOutcome) -> ImportImageProgress {
    ImportImageProgress {
        bytes_done: o.image.size_bytes,
        bytes_total: o.image.size_bytes,
        bytes_per_second: 0,
        image: Some(image_info(&o.image)),
        sha256: o.sha256.clone(),
        resumed_from: o.resumed_from,
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The code is chosen with every other in [`crate::error`].
impl From<ImageError> for Status {
    fn from(e: ImageError) -> Self {
        crate::error::ApiError::from(e).into()
    }
}

#[tonic::async_trait]
impl NodeImageService for ImageService {
    type ImportImageStream = ReceiverStream<Result<ImportImageProgress, Status>>;

    async fn import_image(
        &self,
        request: Request<ImportImageRequest>,
    ) -> Result<Response<Self::ImportImageStream>, Status> {
        let req = request.into_inner();
        let source = ImportSource::parse(&req.url);
        if !matches!(source, ImportSource::Url(_)) {
            return Err(Status::invalid_argument(format!(
                "url {:?} is not an http:// or https:// URL; send local files with UploadImage",
                req.url
            )));
        }
        let import = ImportRequest {
            source,
            name: non_empty(req.name),
            sha256: non_empty(req.sha256),
        };
        let (tx, rx) = mpsc::channel(16);
        let library = self.library.clone();
        tokio::spawn(async move {
            let progress_tx = tx.clone();
            let mut progress = move |p: &ImportProgress| {
                // A slow reader misses intermediate updates, never the result.
                let _ = progress_tx.try_send(Ok(progress_message(p)));
            };
            // A client that goes away cancels the download; its partial file stays for a resume.
            let result = tokio::select! {
                r = library.import(import, &mut progress) => r,
                () = tx.closed() => return,
            };
            let _ = tx
                .send(result.map(|o| final_message(&o)).map_err(Status::from))
                .await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn upload_image(
        &self,
        request: Request<Streaming<UploadImageRequest>>,
    ) -> Result<Response<ImportImageProgress>, Status> {
        use tokio_stream::StreamExt as _;
        let mut stream = request.into_inner();
        let header = match stream.message().await?.and_then(|m| m.part) {
            Some(upload_image_request::Part::Header(h)) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "the first UploadImage message must carry the header (name, sha256, size)",
                ));
            }
        };
        let mut chunks = stream.map(|m| match m {
            Ok(UploadImageRequest {
                part: Some(upload_image_request::Part::Chunk(bytes)),
            }) => Ok(bytes),
            Ok(_) => Err("a message after the header carried no chunk".to_owned()),
            Err(status) => Err(status.message().to_owned()),
        });
        let sha256 = non_empty(header.sha256);
        let size = (header.size_bytes > 0).then_some(header.size_bytes);
        let outcome = self
            .library
            .upload(
                &header.name,
                sha256.as_deref(),
                size,
                &mut chunks,
                &mut |_| {},
            )
            .await?;
        Ok(Response::new(final_message(&outcome)))
    }

    async fn delete_image(
        &self,
        request: Request<DeleteImageRequest>,
    ) -> Result<Response<DeleteImageResponse>, Status> {
        let name = request.into_inner().name;
        let in_use = (self.in_use)().await?;
        let library = self.library.clone();
        let entry = tokio::task::spawn_blocking(move || library.delete(&name, in_use))
            .await
            .map_err(|e| Status::internal(format!("image delete task failed: {e}")))??;
        Ok(Response::new(DeleteImageResponse {
            image: Some(image_info(&entry)),
        }))
    }
}
