//! `-blockdev` and `-object throttle-group` JSON for disks, CD-ROMs and UEFI flash.
//!
//! Each image is two nodes: a `file` node (`<id>-file`) holding the path, and a format node
//! (`<id>-fmt`, driver `qcow2` or `raw`, always explicit so QEMU never probes). A disk with I/O
//! limits gets a `throttle` node (`<id>-thr`) on top, in throttle group `<id>-tg`.

use serde_json::{Value, json};

use limiquantix_vm::model::{DiskFormat, IoLimits};

/// The nodes of one image, bottom first, and the name of the top node a device attaches to.
pub(super) struct ImageNodes {
    /// `-object` values to emit before the nodes (throttle groups).
    pub objects: Vec<Value>,
    /// `-blockdev` values, bottom first.
    pub nodes: Vec<Value>,
    /// Node name the device's `drive` property points at.
    pub top: String,
}

/// The node the device of image `id` attaches to: its throttle node when it has I/O limits, its
/// format node otherwise. A live resize goes there, so the guest's device sees the new size
/// (QEMU 7.2 does not pass a format node's new size up through a throttle node above it).
pub(crate) fn top_node(id: &str, limits: Option<&IoLimits>) -> String {
    match limits.filter(|l| !l.entries().is_empty()) {
        Some(_) => format!("{id}-thr"),
        None => format!("{id}-fmt"),
    }
}

/// Nodes for an image file.
pub(super) fn image(
    id: &str,
    path: &str,
    format: DiskFormat,
    readonly: bool,
    limits: Option<&IoLimits>,
) -> ImageNodes {
    let file = format!("{id}-file");
    let fmt = format!("{id}-fmt");
    let discard = if readonly { "ignore" } else { "unmap" };
    let mut nodes = vec![
        json!({
            "driver": "file",
            "node-name": file,
            "filename": path,
            "read-only": readonly,
            "discard": discard,
        }),
        json!({
            "driver": format.qemu_name(),
            "node-name": fmt,
            "file": file,
            "read-only": readonly,
            "discard": discard,
        }),
    ];
    let mut objects = Vec::new();
    let mut top = fmt;
    if let Some(l) = limits.filter(|l| !l.entries().is_empty()) {
        let group = format!("{id}-tg");
        let limits: serde_json::Map<String, Value> = l
            .entries()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into()))
            .collect();
        objects.push(json!({ "qom-type": "throttle-group", "id": group, "limits": limits }));
        let thr = format!("{id}-thr");
        nodes.push(json!({
            "driver": "throttle",
            "node-name": thr,
            "file": top,
            "throttle-group": group,
            "read-only": readonly,
        }));
        top = thr;
    }
    ImageNodes {
        objects,
        nodes,
        top,
    }
}

/// Nodes for a UEFI flash image: `fw-code` (read-only) or `fw-vars` (writable).
pub(super) fn pflash(name: &str, path: &str, readonly: bool) -> Vec<Value> {
    let file = format!("{name}-file");
    vec![
        json!({
            "driver": "file",
            "node-name": file,
            "filename": path,
            "read-only": readonly,
        }),
        json!({
            "driver": "raw",
            "node-name": name,
            "file": file,
            "read-only": readonly,
        }),
    ]
}
