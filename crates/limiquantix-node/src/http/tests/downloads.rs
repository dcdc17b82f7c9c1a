//! A download job that the daemon's death interrupted after its image was published, before
//! its end was recorded: completed on restart when the image is verified, failed with the
//! reason when it is not.

use super::super::downloads::{HttpDownloads, JobView};
use super::super::record::Record;
use crate::pools::PoolRegistry;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

fn job(id: &str, url: &str, target_dir: &str, checksum: &str) -> JobView {
    JobView {
        job_id: id.into(),
        url: url.into(),
        target_path: format!("{target_dir}/{}", url.rsplit('/').next().unwrap()),
        status: "downloading".into(),
        checksum: checksum.into(),
        target_dir: target_dir.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_job_whose_image_is_in_place_completes_after_a_restart_when_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let (state, pool) = (tmp.path().join("state"), tmp.path().join("pool"));
    let target = pool.join("cloud-images");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let content = b"an image published before the daemon died".to_vec();
    let sha: String = Sha256::digest(&content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for name in ["good.img", "bad.img", "unknown.img"] {
        std::fs::write(target.join(name), &content).unwrap();
    }
    let dir = target.display().to_string();
    let base = "http://127.0.0.1:9/images";
    let zeros = "0".repeat(64);
    let jobs: BTreeMap<String, JobView> = [
        job("good", &format!("{base}/good.img"), &dir, &sha),
        job("bad", &format!("{base}/bad.img"), &dir, &zeros),
        job("unknown", &format!("{base}/unknown.img"), &dir, ""),
    ]
    .into_iter()
    .map(|j| (j.job_id.clone(), j))
    .collect();
    Record::new(&state).save(&Arc::new(Mutex::new(jobs)));
    let configured = BTreeMap::from([("p".to_string(), pool.clone())]);
    let pools = Arc::new(PoolRegistry::open(&state, &configured, vec![]));

    let downloads = HttpDownloads::open(&state, pools).await;
    let good = downloads.status("good").unwrap();
    assert_eq!(good.status, "completed", "{good:?}");
    assert_eq!(good.progress_percent, 100);
    assert_eq!(good.bytes_downloaded, content.len() as u64);
    assert!(good.completed_at.is_some());
    let bad = downloads.status("bad").unwrap();
    assert_eq!(bad.status, "failed", "{bad:?}");
    assert!(bad.error_message.unwrap().contains("sha256"));
    let unknown = downloads.status("unknown").unwrap();
    assert_eq!(unknown.status, "failed", "{unknown:?}");
    assert!(unknown.error_message.unwrap().contains("no record"));
    // Nothing was removed, and the outcome is recorded.
    assert!(target.join("bad.img").exists() && target.join("unknown.img").exists());
    let recorded = Record::new(&state).load();
    assert_eq!(recorded["good"].status, "completed");
}
