//! ResizeVolume of a VM's disk named by its id, over the fake backend with a real disk file.

use super::*;
use std::sync::atomic::Ordering;

#[tokio::test]
async fn a_disk_named_by_its_id_is_resized_reading_the_vms_once() {
    let s = setup();
    create(&s, request(&s)).await.unwrap();
    // The fake keeps no disk files: give its disk a real (raw) one, outside any pool.
    let file = s.dir.path().join("disk0.img");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let fake = &s.service.inner.backend;
    let api_id = {
        let mut vms = fake.vms.lock().unwrap();
        let e = vms.get_mut(&vm_id()).unwrap();
        e.disk_files = vec![file];
        e.definition.api_id(&e.definition.disks[0].id).to_string()
    };
    let before = fake.lists.load(Ordering::Relaxed);
    s.service
        .resize_volume(pb::ResizeVolumeRequest {
            pool_id: "default".into(),
            volume_id: api_id,
            new_size_bytes: 2 << 30,
        })
        .await
        .unwrap();
    assert_eq!(
        fake.disk_sizes
            .lock()
            .unwrap()
            .values()
            .copied()
            .collect::<Vec<_>>(),
        [2 << 30]
    );
    assert_eq!(
        fake.lists.load(Ordering::Relaxed) - before,
        1,
        "the VMs are listed once"
    );
}
