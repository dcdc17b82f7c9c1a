//! QMP `query-blockstats` answers, by disk.
//!
//! The backend names each disk's `-blockdev` nodes `<id>-fmt` (or `<id>-thr` with I/O limits)
//! and its `-device` `<id>`; an entry is matched by its `node-name`, else by its `qdev` path
//! (`/machine/peripheral/<id>/...`).

use limiquantix_vm::DiskUsage;
use serde_json::Value;

/// The counters of the disks named in `disk_ids`, in that order, from a `query-blockstats`
/// answer. A disk the answer does not mention gets zeros; entries of other devices (CD-ROMs)
/// are left out.
pub fn parse(answer: &Value, disk_ids: &[String]) -> Vec<DiskUsage> {
    let entries = answer.as_array().map(Vec::as_slice).unwrap_or_default();
    disk_ids
        .iter()
        .map(|id| {
            let mut d = DiskUsage {
                disk_id: id.clone(),
                ..DiskUsage::default()
            };
            if let Some(stats) = entries
                .iter()
                .find(|e| entry_device(e).as_deref() == Some(id.as_str()))
                .and_then(|e| e.get("stats"))
            {
                let n = |k: &str| stats.get(k).and_then(Value::as_u64).unwrap_or(0);
                d.read_bytes = n("rd_bytes");
                d.write_bytes = n("wr_bytes");
                d.read_ops = n("rd_operations");
                d.write_ops = n("wr_operations");
            }
            d
        })
        .collect()
}

/// The device id an entry belongs to.
fn entry_device(e: &Value) -> Option<String> {
    let s = |k: &str| e.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    if let Some(node) = s("node-name") {
        for suffix in ["-fmt", "-thr"] {
            if let Some(id) = node.strip_suffix(suffix) {
                return Some(id.to_owned());
            }
        }
    }
    let qdev = s("qdev")?;
    let qdev = qdev.strip_prefix("/machine/peripheral/").unwrap_or(qdev);
    qdev.split('/').next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_are_matched_by_node_name_or_qdev() {
        let answer = json!([
            { "device": "", "node-name": "disk0-fmt",
              "qdev": "/machine/peripheral/disk0/virtio-backend",
              "stats": { "rd_bytes": 4096, "wr_bytes": 512, "rd_operations": 2,
                         "wr_operations": 1, "flush_operations": 9 } },
            { "device": "", "qdev": "data",
              "stats": { "rd_bytes": 10, "wr_bytes": 20 } },
            { "device": "", "node-name": "seed-fmt", "qdev": "seed",
              "stats": { "rd_bytes": 99999 } },
            { "device": "", "node-name": "lim-thr",
              "stats": { "rd_bytes": 1, "wr_bytes": 2, "unknown_field": true } }
        ]);
        let ids = ["disk0", "data", "lim", "absent"].map(String::from);
        let d = parse(&answer, &ids);
        assert_eq!(d.len(), 4);
        assert_eq!(
            (
                d[0].read_bytes,
                d[0].write_bytes,
                d[0].read_ops,
                d[0].write_ops
            ),
            (4096, 512, 2, 1)
        );
        assert_eq!((d[1].read_bytes, d[1].write_bytes), (10, 20));
        assert_eq!((d[2].read_bytes, d[2].write_bytes), (1, 2));
        assert_eq!((d[3].disk_id.as_str(), d[3].read_bytes), ("absent", 0));
        assert!(parse(&json!(null), &ids).iter().all(|d| d.read_bytes == 0));
    }
}
