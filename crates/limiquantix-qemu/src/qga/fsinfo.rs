//! The guest's mounted filesystems (`guest-get-fsinfo`).

use serde_json::Value;

use super::{QgaClient, QgaError};
use limiquantix_vm::GuestFilesystem;

impl QgaClient {
    /// The guest's mounted filesystems with their sizes (`guest-get-fsinfo`; sizes need an
    /// agent of QEMU 5.0 or later and are 0 otherwise).
    pub async fn filesystems(&self) -> Result<Vec<GuestFilesystem>, QgaError> {
        let v = self.execute("guest-get-fsinfo", None).await?;
        Ok(parse_fsinfo(&v))
    }
}

/// The filesystems of a `guest-get-fsinfo` answer.
pub(super) fn parse_fsinfo(v: &Value) -> Vec<GuestFilesystem> {
    let text = |f: &Value, k: &str| f.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let num = |f: &Value, k: &str| f.get(k).and_then(Value::as_u64).unwrap_or(0);
    v.as_array()
        .map(|list| {
            list.iter()
                .map(|f| GuestFilesystem {
                    mount_point: text(f, "mountpoint"),
                    device: text(f, "name"),
                    fstype: text(f, "type"),
                    total_bytes: num(f, "total-bytes"),
                    used_bytes: num(f, "used-bytes"),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsinfo_answers_parse() {
        let v: Value = serde_json::from_str(
            r#"[{"name":"vda1","mountpoint":"/","type":"ext4","used-bytes":1073741824,
                 "total-bytes":2147483648,"disk":[]},
                {"name":"vda15","mountpoint":"/boot/efi","type":"vfat","disk":[]}]"#,
        )
        .unwrap();
        let fs = parse_fsinfo(&v);
        assert_eq!(fs.len(), 2);
        assert_eq!(
            (fs[0].mount_point.as_str(), fs[0].total_bytes),
            ("/", 2 << 30)
        );
        assert_eq!((fs[1].fstype.as_str(), fs[1].used_bytes), ("vfat", 0));
        assert!(parse_fsinfo(&Value::Null).is_empty());
    }
}
