//! Tests of the image library: real files, real qcow2 images made by `qemu-img`, and a real HTTP
//! server on 127.0.0.1 that supports `Range` and can cut a transfer short.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

/// A raw disk image: a zero boot sector, then a pattern.
pub(super) fn raw_image(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| if i < 1024 { 0 } else { (i * 7 % 251) as u8 })
        .collect()
}

pub(super) fn sha(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(super) fn fast_http() -> HttpOptions {
    HttpOptions {
        retries: 3,
        retry_delay: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
    }
}

/// Files of the library directory, `.partial` included, for "leaves nothing" checks.
pub(super) fn files_in(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walk(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

async fn import(
    lib: &ImageLibrary,
    source: ImportSource,
    name: Option<&str>,
    sha256: Option<&str>,
) -> (Result<ImportOutcome, ImageError>, Vec<ImportProgress>) {
    let mut seen = Vec::new();
    let mut cb = |p: &ImportProgress| seen.push(*p);
    let r = lib
        .import(
            ImportRequest {
                source,
                name: name.map(str::to_owned),
                sha256: sha256.map(str::to_owned),
            },
            &mut cb,
        )
        .await;
    (r, seen)
}

#[tokio::test]
async fn local_import_with_good_and_bad_checksums() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = ImageLibrary::open(tmp.path().join("images")).unwrap();
    let src = tmp.path().join("disk.img");
    let data = raw_image(3 << 20);
    std::fs::write(&src, &data).unwrap();

    // Bad checksum: an error, and nothing anywhere in the library.
    let (r, _) = import(
        &lib,
        ImportSource::Path(src.clone()),
        None,
        Some(&"0".repeat(64)),
    )
    .await;
    let err = r.unwrap_err().to_string();
    assert!(
        err.contains("sha256 mismatch") && err.contains(&sha(&data)),
        "{err}"
    );
    assert_eq!(files_in(lib.dir()), Vec::<String>::new());
    assert!(lib.list().unwrap().is_empty());

    // Good checksum (upper case accepted): visible, byte-identical, progress reported.
    let (r, progress) = import(
        &lib,
        ImportSource::Path(src.clone()),
        None,
        Some(&sha(&data).to_uppercase()),
    )
    .await;
    let out = r.unwrap();
    assert_eq!(out.image.name, "disk.img");
    assert_eq!(out.image.format, ImageFormat::Raw);
    assert_eq!(out.sha256, sha(&data));
    assert_eq!(std::fs::read(&out.image.path).unwrap(), data);
    let last = progress.last().unwrap();
    assert_eq!(
        (last.done, last.total),
        (data.len() as u64, Some(data.len() as u64))
    );
    assert_eq!(files_in(lib.dir()), vec!["disk.img".to_owned()]);

    // The name is taken, with or without its extension; `disk` finds `disk.img`.
    let (r, _) = import(&lib, ImportSource::Path(src.clone()), Some("disk"), None).await;
    assert!(matches!(r, Err(ImageError::AlreadyExists(_))), "{r:?}");
    assert_eq!(lib.get("disk").unwrap().name, "disk.img");
    assert!(matches!(lib.get("nope"), Err(ImageError::NotFound(_))));
}

#[tokio::test]
async fn real_qcow2_images_are_detected_and_backed_ones_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = ImageLibrary::open(tmp.path().join("images")).unwrap();
    let base = tmp.path().join("base.qcow2");
    let overlay = tmp.path().join("overlay.qcow2");
    let qemu_img = |args: &[&str]| {
        let st = Command::new("qemu-img")
            .args(args)
            .output()
            .expect("qemu-img runs");
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
    };
    qemu_img(&["create", "-q", "-f", "qcow2", base.to_str().unwrap(), "64M"]);
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "qcow2",
        "-b",
        base.to_str().unwrap(),
        overlay.to_str().unwrap(),
    ]);

    let (r, _) = import(&lib, ImportSource::Path(base.clone()), Some("base"), None).await;
    let img = r.unwrap().image;
    assert_eq!(img.format, ImageFormat::Qcow2);
    assert_eq!(lib.list().unwrap(), vec![img.clone()]);

    let (r, _) = import(&lib, ImportSource::Path(overlay), None, None).await;
    let err = r.unwrap_err().to_string();
    assert!(
        err.contains("backing file") && err.contains("qemu-img convert"),
        "{err}"
    );
    assert_eq!(files_in(lib.dir()), vec!["base".to_owned()]);

    // Delete: refused while a VM's overlay uses it (through another path spelling), then allowed.
    let spelled = lib.dir().join(".").join("base");
    let err = lib.delete("base", [&spelled]).unwrap_err();
    assert!(matches!(err, ImageError::InUse { .. }), "{err}");
    lib.delete("base", std::iter::empty::<&Path>()).unwrap();
    assert!(lib.list().unwrap().is_empty());
}

#[tokio::test]
async fn foreign_formats_are_refused_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = ImageLibrary::open(tmp.path().join("images")).unwrap();
    let src = tmp.path().join("win.vmdk");
    let mut data = b"KDMV\x01\0\0\0".to_vec();
    data.resize(4096, 0);
    std::fs::write(&src, &data).unwrap();
    let (r, _) = import(&lib, ImportSource::Path(src), None, None).await;
    let err = r.unwrap_err().to_string();
    assert!(
        err.contains("VMDK") && err.contains("qemu-img convert -f vmdk -O qcow2"),
        "{err}"
    );
    assert_eq!(files_in(lib.dir()), Vec::<String>::new());

    let (r, _) = import(
        &lib,
        ImportSource::Path(tmp.path().join("absent.img")),
        None,
        None,
    )
    .await;
    assert!(matches!(r, Err(ImageError::InvalidSource { .. })), "{r:?}");
    let (r, _) = import(&lib, ImportSource::Path(tmp.path().into()), Some("d"), None).await;
    assert!(matches!(r, Err(ImageError::InvalidSource { .. })), "{r:?}");
}

/// A small HTTP/1.1 server for one file, supporting `Range: bytes=N-` and `If-Range`; the
/// n-th request is cut after `cuts[n]` body bytes when given.
pub(super) struct TestServer {
    pub(super) url: String,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

impl TestServer {
    pub(super) async fn start(body: Vec<u8>, cuts: Vec<Option<usize>>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/images/disk.img", listener.local_addr().unwrap());
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let seen = ranges.clone();
        let body = Arc::new(body);
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let cut = cuts.get(n).copied().flatten();
                n += 1;
                tokio::spawn(serve(sock, body.clone(), seen.clone(), cut));
            }
        });
        TestServer { url, ranges }
    }

    fn ranges(&self) -> Vec<Option<String>> {
        self.ranges.lock().unwrap().clone()
    }
}

async fn serve(
    mut sock: tokio::net::TcpStream,
    body: Arc<Vec<u8>>,
    seen: Arc<Mutex<Vec<Option<String>>>>,
    cut: Option<usize>,
) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let req = String::from_utf8_lossy(&req).to_string();
    let path = req.split_whitespace().nth(1).unwrap_or_default().to_owned();
    let header = |name: &str| {
        req.lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| v.trim().to_owned())
    };
    let range = header("range");
    seen.lock().unwrap().push(range.clone());
    let etag = "\"v1\"";
    let len = body.len();
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|_| header("if-range").is_none_or(|v| v == etag));
    let (head, from) = if path != "/images/disk.img" {
        (
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n".to_owned(),
            len,
        )
    } else {
        match start {
            Some(s) if s >= len => (
                format!(
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n"
                ),
                len,
            ),
            Some(s) => (
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\nContent-Length: {}\r\nETag: {etag}\r\n",
                    len - 1,
                    len - s
                ),
                s,
            ),
            None => (
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nETag: {etag}\r\nAccept-Ranges: bytes\r\n"
                ),
                0,
            ),
        }
    };
    let head = format!("{head}Connection: close\r\n\r\n");
    if sock.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let rest = &body[from..];
    let send = cut.map_or(rest.len(), |c| c.min(rest.len()));
    let _ = sock.write_all(&rest[..send]).await;
    let _ = sock.flush().await;
    // Dropping the socket closes the connection, cutting the transfer short when `send` < rest.
}

#[tokio::test]
async fn http_import_resumes_an_interrupted_transfer() {
    let data = raw_image(2 << 20);
    let half = 1 << 20;
    let server = TestServer::start(data.clone(), vec![Some(half)]).await;
    let tmp = tempfile::tempdir().unwrap();
    let lib = ImageLibrary::with_http_options(tmp.path().join("images"), fast_http()).unwrap();

    let (r, progress) = import(
        &lib,
        ImportSource::Url(server.url.clone()),
        None,
        Some(&sha(&data)),
    )
    .await;
    let out = r.unwrap();
    assert_eq!(out.image.name, "disk.img");
    assert_eq!(std::fs::read(&out.image.path).unwrap(), data);
    // The first request asked for everything and was cut; the second resumed at the cut.
    assert_eq!(server.ranges(), vec![None, Some(format!("bytes={half}-"))]);
    assert_eq!(progress.last().unwrap().done, data.len() as u64);
    // The image, and the record of where it came from.
    assert_eq!(
        files_in(lib.dir()),
        [".partial/disk.img.origin", "disk.img"]
    );

    // A restarted job recognises the image this download published, with or without a
    // checksum; another URL's, or changed content, is not taken.
    let found = lib.verify_published("disk.img", &server.url, None).unwrap();
    assert_eq!((found.sha256, found.image), (out.sha256, out.image));
    let sum = sha(&data);
    lib.verify_published("disk.img", "http://elsewhere/disk.img", Some(&sum))
        .unwrap();
    let e = lib.verify_published("disk.img", "http://elsewhere/disk.img", None);
    assert!(matches!(e, Err(ImageError::Unverified { .. })), "{e:?}");
    std::fs::write(lib.dir().join("disk.img"), b"changed").unwrap();
    let e = lib
        .verify_published("disk.img", &server.url, None)
        .unwrap_err();
    assert!(e.to_string().contains("sha256"), "{e}");
    // The record goes with its image.
    lib.delete("disk.img", Vec::<&Path>::new()).unwrap();
    assert_eq!(files_in(lib.dir()), Vec::<String>::new());
}

#[tokio::test]
async fn http_import_resumes_across_imports_and_bad_checksum_leaves_nothing() {
    let data = raw_image(2 << 20);
    let cut = 700_000;
    // Request 1 is cut and retries are off, so the first import fails and keeps its partial file.
    let server = TestServer::start(data.clone(), vec![Some(cut)]).await;
    let tmp = tempfile::tempdir().unwrap();
    let no_retry = HttpOptions {
        retries: 0,
        ..fast_http()
    };
    let lib = ImageLibrary::with_http_options(tmp.path().join("images"), no_retry).unwrap();
    let source = ImportSource::Url(server.url.clone());

    let (r, _) = import(&lib, source.clone(), Some("deb"), None).await;
    let err = r.unwrap_err().to_string();
    assert!(err.contains("run the import again to resume"), "{err}");
    assert!(lib.list().unwrap().is_empty());
    assert_eq!(
        std::fs::metadata(lib.dir().join(".partial/deb.part"))
            .unwrap()
            .len(),
        cut as u64
    );

    // The second import resumes from the cut, then fails the checksum: nothing is left.
    let (r, _) = import(&lib, source.clone(), Some("deb"), Some(&"1".repeat(64))).await;
    assert!(
        matches!(r, Err(ImageError::ChecksumMismatch { .. })),
        "{r:?}"
    );
    assert_eq!(server.ranges(), vec![None, Some(format!("bytes={cut}-"))]);
    assert_eq!(files_in(lib.dir()), Vec::<String>::new());

    // A missing URL is a clear error, not retried.
    let missing = ImportSource::Url(server.url.replace("disk.img", "nope.img"));
    let (r, _) = import(&lib, missing, None, None).await;
    assert!(
        r.unwrap_err()
            .to_string()
            .contains("the server answered 404")
    );
    assert_eq!(files_in(lib.dir()), Vec::<String>::new());
}

#[tokio::test]
async fn uploads_are_checked_and_a_broken_stream_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = ImageLibrary::open(tmp.path().join("images")).unwrap();
    let data = raw_image(300_000);
    let chunks = |fail: bool| {
        let mut items: Vec<Result<Vec<u8>, String>> =
            data.chunks(65536).map(|c| Ok(c.to_vec())).collect();
        if fail {
            items.truncate(2);
            items.push(Err("client went away".to_owned()));
        }
        tokio_stream::iter(items)
    };
    let mut ignore = |_: &ImportProgress| {};

    let err = lib
        .upload(
            "up.img",
            None,
            Some(data.len() as u64),
            &mut chunks(true),
            &mut ignore,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("client went away"), "{err}");
    let err = lib
        .upload(
            "up.img",
            None,
            Some(data.len() as u64 + 1),
            &mut chunks(false),
            &mut ignore,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("received 300000 of 300001 bytes"),
        "{err}"
    );
    assert_eq!(files_in(lib.dir()), Vec::<String>::new());

    let out = lib
        .upload(
            "up.img",
            Some(&sha(&data)),
            None,
            &mut chunks(false),
            &mut ignore,
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out.image.path).unwrap(), data);
}

/// The gRPC glue, end to end over a Unix socket: upload, import from HTTP with a cut, list,
/// delete refused while in use, then allowed.
#[tokio::test]
async fn grpc_service_round_trip() {
    use limiquantix_proto::v1::node_image_service_client::NodeImageServiceClient;
    use limiquantix_proto::v1::{
        DeleteImageRequest, ImportImageRequest, UploadImageHeader, UploadImageRequest,
        upload_image_request::Part,
    };

    let tmp = tempfile::tempdir().unwrap();
    let lib = ImageLibrary::with_http_options(tmp.path().join("images"), fast_http()).unwrap();
    let socket = tmp.path().join("api.sock");
    let in_use_path = Arc::new(Mutex::new(Vec::<std::path::PathBuf>::new()));
    let in_use: crate::image_service::InUse = {
        let p = in_use_path.clone();
        Arc::new(move || {
            let v = p.lock().unwrap().clone();
            Box::pin(async move { Ok(v) })
        })
    };
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(crate::image_service::server(lib.clone(), in_use))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    let mut client = NodeImageServiceClient::connect(format!("unix:{}", socket.display()))
        .await
        .unwrap();

    // Upload in chunks.
    let data = raw_image(1_500_000);
    let mut msgs = vec![UploadImageRequest {
        part: Some(Part::Header(UploadImageHeader {
            name: "up.img".into(),
            sha256: sha(&data),
            size_bytes: data.len() as u64,
        })),
    }];
    msgs.extend(
        data.chunks(crate::image_service::MAX_CHUNK)
            .map(|c| UploadImageRequest {
                part: Some(Part::Chunk(c.to_vec())),
            }),
    );
    let done = client
        .upload_image(tokio_stream::iter(msgs))
        .await
        .unwrap()
        .into_inner();
    let info = done.image.unwrap();
    assert_eq!(
        (info.name.as_str(), info.image_id.as_str()),
        ("up.img", "up")
    );
    assert_eq!(std::fs::read(&info.path).unwrap(), data);

    // Download with a cut transfer: progress messages, then the image.
    let server = TestServer::start(data.clone(), vec![Some(500_000)]).await;
    let mut stream = client
        .import_image(ImportImageRequest {
            url: server.url.clone(),
            name: "dl.img".into(),
            sha256: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(msg) = stream.message().await.unwrap() {
        last = Some(msg);
    }
    let last = last.unwrap();
    assert_eq!(last.sha256, sha(&data));
    assert_eq!(last.image.unwrap().size_bytes, data.len() as u64);

    // A path is not a URL: refused with a pointer to UploadImage.
    let status = client
        .import_image(ImportImageRequest {
            url: "/etc/shadow".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("UploadImage"), "{status:?}");

    let listed = crate::image_service::list_images(lib.dir()).await.unwrap();
    let names: Vec<_> = listed.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["dl.img", "up.img"]);

    // Delete refused while a VM disk uses the image, then allowed.
    in_use_path.lock().unwrap().push(lib.dir().join("up.img"));
    let status = client
        .delete_image(DeleteImageRequest { name: "up".into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    in_use_path.lock().unwrap().clear();
    client
        .delete_image(DeleteImageRequest { name: "up".into() })
        .await
        .unwrap();
    let status = client
        .delete_image(DeleteImageRequest { name: "up".into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
}
