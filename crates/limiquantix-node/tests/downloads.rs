//! Image downloads and the Open vSwitch RPCs through the daemon binary, against an HTTP server
//! in the test: DownloadImage answers at once and the job completes in the background (the image
//! then shows in ListImages), a cancel stops a transfer and leaves nothing, a bad checksum fails
//! and leaves nothing, nothing is written outside the images directory; the OVS and
//! network-port RPCs answer FAILED_PRECONDITION naming what the node lacks.

mod common;

use common::{Node, eventually};
use limiquantix_proto::NodeClient;
use limiquantix_proto::v1 as pb;
use limiquantix_proto::v1::download_progress::Status as Job;
use sha2::{Digest as _, Sha256};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(60);

/// A raw disk image: a zero boot sector, then a pattern.
fn raw_image(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| if i < 1024 { 0 } else { (i * 7 % 251) as u8 })
        .collect()
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Serves `body` at every path over HTTP/1.1 on 127.0.0.1 and returns the base URL. With
/// `stall_after`, only that many bytes of the body are sent and the connection is then held
/// open until the client leaves.
async fn http_server(body: Vec<u8>, stall_after: Option<usize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let send = stall_after.unwrap_or(body.len()).min(body.len());
                let _ = sock.write_all(&body[..send]).await;
                if stall_after.is_some() {
                    while let Ok(n) = sock.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                }
            });
        }
    });
    base
}

fn download(url: &str) -> pb::DownloadImageOnNodeRequest {
    pb::DownloadImageOnNodeRequest {
        image_id: "cp-image-1".into(),
        url: url.into(),
        ..Default::default()
    }
}

async fn status(
    client: &mut NodeClient,
    job_id: &str,
) -> Result<pb::DownloadProgress, tonic::Status> {
    client
        .get_download_status(pb::GetDownloadStatusRequest {
            job_id: job_id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn cancel(client: &mut NodeClient, job_id: &str) -> Result<(), tonic::Status> {
    client
        .cancel_download(pb::CancelDownloadRequest {
            job_id: job_id.into(),
        })
        .await
        .map(|_| ())
}

/// Polls GetDownloadStatus until `f` holds; panics with the last answer after [`WAIT`].
async fn poll_until(
    client: &mut NodeClient,
    job_id: &str,
    mut f: impl FnMut(&pb::DownloadProgress) -> bool,
) -> pb::DownloadProgress {
    let mut last = None;
    let reached = eventually(WAIT, async || {
        let s = status(client, job_id).await.unwrap();
        let ok = f(&s);
        last = Some(s);
        ok
    })
    .await;
    let last = last.unwrap();
    assert!(reached, "job {job_id} never got there; last: {last:?}");
    last
}

/// Every file under `dir`, relative, sorted (the `.partial` directory's files included).
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            // Not following symlinks: a link to a directory is a name like any file's.
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), out)
            } else {
                out.push(e.path())
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    let mut names: Vec<String> = out
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    names.sort();
    names
}

async fn image_names(client: &mut NodeClient) -> Vec<String> {
    let list = client.list_images(()).await.unwrap().into_inner();
    list.images.into_iter().map(|i| i.name).collect()
}

#[tokio::test]
async fn a_download_returns_at_once_and_completes_in_the_background() {
    let data = raw_image(3 << 20);
    let base = http_server(data.clone(), None).await;
    let mut node = Node::new();
    node.start();
    let mut client = node.client().await;

    let request = pb::DownloadImageOnNodeRequest {
        checksum: sha256(&data),
        checksum_type: "sha256".into(),
        target_dir: node.images.display().to_string(),
        ..download(&format!("{base}/images/cirros.img?token=1"))
    };
    let mut stream = client.download_image(request).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().expect("a first message");
    assert!(uuid::Uuid::parse_str(&first.job_id).is_ok(), "{first:?}");
    assert_eq!(first.image_id, "cp-image-1");
    // The stream is not needed: the job runs on without it.
    drop(stream);

    let done = poll_until(&mut client, &first.job_id, |s| {
        matches!(s.status(), Job::Completed | Job::Failed | Job::Cancelled)
    })
    .await;
    assert_eq!(done.status(), Job::Completed, "{done:?}");
    assert_eq!(done.progress_percent, 100);
    assert_eq!(done.bytes_downloaded, data.len() as u64);
    assert_eq!(done.bytes_total, data.len() as u64);
    assert_eq!(done.error, "");
    let path = node.images.join("cirros.img");
    assert_eq!(done.path, path.display().to_string());
    assert_eq!(std::fs::read(&path).unwrap(), data);
    assert_eq!(
        files_under(&node.images),
        [".partial/cirros.img.origin", "cirros.img"]
    );
    let list = client.list_images(()).await.unwrap().into_inner();
    let image = list
        .images
        .iter()
        .find(|i| i.name == "cirros.img")
        .expect("listed");
    assert_eq!(
        (image.size_bytes, image.format.as_str()),
        (data.len() as u64, "raw")
    );

    // A completed job cannot be cancelled; the image stays.
    let e = cancel(&mut client, &first.job_id).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(path.is_file());
    let log = node.log_text();
    assert!(log.contains("download job finished"), "{log}");
}

#[tokio::test]
async fn a_cancelled_download_stops_and_leaves_nothing() {
    let base = http_server(raw_image(8 << 20), Some(512 << 10)).await;
    let mut node = Node::new();
    node.start();
    let mut client = node.client().await;

    let request = pb::DownloadImageOnNodeRequest {
        job_id: "cancel-me".into(),
        filename: "stalled.img".into(),
        ..download(&format!("{base}/slow"))
    };
    let mut stream = client.download_image(request).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.job_id, "cancel-me");
    // All the server sent shows, although the transfer stalled right after it.
    let moving = poll_until(&mut client, "cancel-me", |s| {
        s.bytes_downloaded == 512 << 10
    })
    .await;
    assert_eq!(moving.status(), Job::Downloading, "{moving:?}");
    assert_eq!(moving.bytes_total, 8 << 20);
    assert!(moving.progress_percent < 100);

    cancel(&mut client, "cancel-me").await.unwrap();
    let after = status(&mut client, "cancel-me").await.unwrap();
    assert_eq!(after.status(), Job::Cancelled);
    assert!(
        files_under(&node.images).is_empty(),
        "{:?}",
        files_under(&node.images)
    );
    assert!(image_names(&mut client).await.is_empty());
    // The stream ends with the cancellation.
    let mut last = first;
    while let Some(m) = stream.message().await.unwrap() {
        last = m;
    }
    assert_eq!(last.status(), Job::Cancelled);
    // Cancelling again is harmless; unknown jobs are NOT_FOUND.
    cancel(&mut client, "cancel-me").await.unwrap();
    assert_eq!(
        cancel(&mut client, "nope").await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        status(&mut client, "nope").await.unwrap_err().code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn a_bad_checksum_fails_and_leaves_nothing() {
    let base = http_server(raw_image(1 << 20), None).await;
    let mut node = Node::new();
    node.start();
    let mut client = node.client().await;

    let request = pb::DownloadImageOnNodeRequest {
        checksum: sha256(b"not this image"),
        ..download(&format!("{base}/images/bad.img"))
    };
    let mut stream = client.download_image(request).await.unwrap().into_inner();
    let mut last = None;
    while let Some(m) = stream.message().await.unwrap() {
        last = Some(m);
    }
    let last = last.unwrap();
    assert_eq!(last.status(), Job::Failed, "{last:?}");
    assert!(last.error.contains("sha256 mismatch"), "{}", last.error);
    assert_eq!(last.path, "");
    let polled = status(&mut client, &last.job_id).await.unwrap();
    assert_eq!(polled.status(), Job::Failed);
    assert!(
        files_under(&node.images).is_empty(),
        "{:?}",
        files_under(&node.images)
    );
    assert!(image_names(&mut client).await.is_empty());
    let e = cancel(&mut client, &last.job_id).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn downloads_are_confined_to_the_images_directory() {
    let base = http_server(raw_image(64 << 10), None).await;
    let mut node = Node::new();
    std::os::unix::fs::symlink("/tmp", node.images.join("elsewhere")).unwrap();
    std::fs::write(node.images.join("taken.img"), raw_image(4096)).unwrap();
    node.start();
    let mut client = node.client().await;
    let url = format!("{base}/images/x.img");
    let cases = [
        ("target_dir", "/tmp".to_owned(), Code::PermissionDenied),
        (
            "target_dir",
            node.pool.display().to_string(),
            Code::PermissionDenied,
        ),
        (
            "target_dir",
            node.images.join("elsewhere").display().to_string(),
            Code::PermissionDenied,
        ),
        (
            "target_dir",
            format!("{}/../..", node.images.display()),
            Code::InvalidArgument,
        ),
        ("target_dir", "images".to_owned(), Code::InvalidArgument),
        (
            "filename",
            "../../etc/cron.d/x".to_owned(),
            Code::InvalidArgument,
        ),
        ("filename", ".hidden".to_owned(), Code::InvalidArgument),
        ("filename", "taken".to_owned(), Code::AlreadyExists),
        ("checksum_type", "md5".to_owned(), Code::InvalidArgument),
        (
            "url",
            "file:///etc/passwd".to_owned(),
            Code::InvalidArgument,
        ),
    ];
    for (field, value, code) in cases {
        let mut r = download(&url);
        r.checksum = "0".repeat(64);
        match field {
            "target_dir" => r.target_dir = value.clone(),
            "filename" => r.filename = value.clone(),
            "checksum_type" => r.checksum_type = value.clone(),
            _ => r.url = value.clone(),
        }
        let e = client.download_image(r).await.map(|_| ()).unwrap_err();
        assert_eq!(e.code(), code, "{field} = {value:?}: {e:?}");
    }
    assert_eq!(files_under(&node.images), ["elsewhere", "taken.img"]);
}

/// Whether `ovs-vsctl` is on this machine's `PATH`.
fn ovs_installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("ovs-vsctl").is_file()))
}

#[tokio::test]
async fn ovs_and_network_port_rpcs_say_what_the_node_lacks() {
    let mut node = Node::new();
    node.start();
    let mut client = node.client().await;
    let installed = ovs_installed();
    let expect = |what: &str, r: Result<(), tonic::Status>| {
        let e = r.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{what}: {e:?}");
        if installed {
            assert!(
                e.message().contains("not supported by this node yet"),
                "{what}: {e:?}"
            );
        } else {
            assert_eq!(
                e.message(),
                "Open vSwitch is not installed on this node (ovs-vsctl not found)",
                "{what}"
            );
        }
    };
    let ovs = client.get_ovs_status(()).await;
    if installed {
        assert!(!ovs.unwrap().into_inner().ovs_version.is_empty());
    } else {
        expect("GetOVSStatus", ovs.map(|_| ()));
    }
    let port = pb::ConfigureNetworkPortRequest {
        port_id: "p1".into(),
        vm_id: "v1".into(),
        ..Default::default()
    };
    expect(
        "ConfigureNetworkPort",
        client.configure_network_port(port).await.map(|_| ()),
    );
    let delete = pb::DeleteNetworkPortRequest {
        port_id: "p1".into(),
        vm_id: "v1".into(),
    };
    expect(
        "DeleteNetworkPort",
        client.delete_network_port(delete).await.map(|_| ()),
    );
    let get = pb::GetNetworkPortStatusRequest {
        port_id: "p1".into(),
    };
    expect(
        "GetNetworkPortStatus",
        client.get_network_port_status(get).await.map(|_| ()),
    );
    expect(
        "ListNetworkPorts",
        client.list_network_ports(()).await.map(|_| ()),
    );
}
