//! Registry tests.

use super::*;
use std::collections::BTreeMap;

#[test]
fn api_pools_live_under_the_roots_persist_and_are_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pools");
    let configured = BTreeMap::from([("conf".to_string(), tmp.path().join("c"))]);
    let reg = PoolRegistry::open(tmp.path(), &configured, vec![root.clone()]);
    let (p, created) = reg.init_local("a1b2", "", None).unwrap();
    assert!(created && p.dir == root.join("a1b2") && p.dir.is_dir());
    let (_, created) = reg.init_local("a1b2", "", None).unwrap();
    assert!(!created, "the same pool again is success");
    let dir = root.join("data").display().to_string();
    reg.init_local("d", &dir, None).unwrap();
    assert!(matches!(
        reg.init_local("d", "", None).unwrap_err(),
        PoolError::Conflict { .. }
    ));
    for bad in [
        "/etc",
        "/tmp/x",
        "relative",
        &format!("{}/../x", root.display()),
    ] {
        assert!(
            matches!(
                reg.init_local("e", bad, None).unwrap_err(),
                PoolError::Outside { .. }
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        reg.init_local("../x", "", None).unwrap_err(),
        PoolError::BadId(_)
    ));
    let again = PoolRegistry::open(tmp.path(), &configured, vec![root.clone()]);
    assert_eq!(again.all(), reg.all());
    assert_eq!(again.get("conf").unwrap().origin, Origin::Config);

    // Destroying: API pools only; an empty directory goes, a full one stays.
    assert!(matches!(reg.destroy("conf"), Err(DestroyError::Configured)));
    assert!(matches!(reg.destroy("nope"), Err(DestroyError::NotFound)));
    std::fs::write(root.join("data/disk.qcow2"), b"x").unwrap();
    assert!(!reg.destroy("d").unwrap(), "a directory with files is kept");
    assert!(root.join("data/disk.qcow2").exists());
    assert!(reg.destroy("a1b2").unwrap());
    assert!(!root.join("a1b2").exists());
    let again = PoolRegistry::open(tmp.path(), &configured, vec![root]);
    assert!(again.get("a1b2").is_none() && again.get("d").is_none());
}
