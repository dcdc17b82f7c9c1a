//! Crash safety of CreateVM: the daemon dies at a point inside CreateVM, is started again, and a
//! retry of the same request succeeds with nothing left over from the first attempt.
//!
//! Points inside the daemon come from `LQ_FAULT_INJECT` (the process aborts there). The point
//! inside the backend's define, right after the overlay was created, is reached with a
//! `qemu-img` wrapper that runs the real tool and then SIGKILLs the daemon (its parent).

mod common;

use common::{Node, aborted, cloud_vm};
use limiquantix_proto::v1 as pb;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

const ID: &str = "5d4c3b2a-1f0e-4d9c-8b7a-695847362514";

fn request(node: &Node) -> pb::CreateVmOnNodeRequest {
    cloud_vm(ID, "crashy", &node.images.join("cloud.qcow2"))
}

/// Everything in the VM directory, sorted.
fn vm_files(node: &Node) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(node.state.join("vms").join(ID))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

async fn retry_succeeds(node: &mut Node, expect_created: bool) {
    node.start();
    let mut client = node.client().await;
    let r = client.create_vm(request(node)).await.unwrap().into_inner();
    assert_eq!(r.created, expect_created, "{r:?}");
    assert_eq!(
        node.vm_dirs(),
        [ID],
        "only the VM's directory, no staging leftovers"
    );
    let files = vm_files(node);
    for f in ["cloud-init.iso", "vm.json"] {
        assert!(files.contains(&f.to_string()), "{f} missing: {files:?}");
    }
    assert_eq!(
        files.iter().filter(|f| f.starts_with("disk")).count(),
        1,
        "{files:?}"
    );
    let list = client.list_v_ms(()).await.unwrap().into_inner();
    assert_eq!(list.vms.len(), 1);
    node.terminate();
}

#[tokio::test]
async fn a_daemon_killed_inside_create_vm_leaves_nothing_that_blocks_a_retry() {
    for (point, defined) in [
        ("createvm:after-validate", false),
        ("createvm:after-seed", false),
        ("createvm:after-define", true),
    ] {
        let mut node = Node::new();
        node.small_image("cloud.qcow2");
        node.start_with(&[("LQ_FAULT_INJECT", point)]);
        let mut client = node.client().await;
        let err = client.create_vm(request(&node)).await.unwrap_err();
        assert!(
            matches!(
                err.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
            ),
            "{point}: {err:?}"
        );
        let status = node.wait_exit();
        assert!(aborted(status), "{point}: {status}");
        if defined {
            assert_eq!(node.vm_dirs(), [ID], "{point}");
        } else {
            assert!(node.vm_dirs().is_empty(), "{point}: {:?}", node.vm_dirs());
        }
        retry_succeeds(&mut node, !defined).await;
    }
}

#[tokio::test]
async fn a_daemon_killed_right_after_the_overlay_was_created_leaves_nothing() {
    let mut node = Node::new();
    node.small_image("cloud.qcow2");
    let wrapper = node.root.join("qemu-img-then-die");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nqemu-img \"$@\"; rc=$?\ncase \"$1\" in create) kill -9 $PPID ;; esac\nexit $rc\n",
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    node.qemu_img = Some(wrapper);
    node.start();
    let mut client = node.client().await;
    let err = client.create_vm(request(&node)).await.unwrap_err();
    assert!(
        matches!(err.code(), tonic::Code::Unavailable | tonic::Code::Unknown),
        "{err:?}"
    );
    let status = node.wait_exit();
    assert!(!status.success(), "{status}");
    // The overlay exists somewhere in a staging directory: the crash hit mid-define.
    let staged = walk(&node.state.join("vms"));
    assert!(staged.iter().any(|p| p.ends_with(".qcow2")), "{staged:?}");

    node.qemu_img = None;
    retry_succeeds(&mut node, true).await;
    assert!(
        !walk(&node.state.join("vms"))
            .iter()
            .any(|p| p.contains("stag"))
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}
