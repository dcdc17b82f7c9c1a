//! Whether a pool is usable now: checked at every question, so a pool whose directory or share
//! comes back is usable again without a restart.

use super::model::{Pool, PoolKind};

/// `Ok` when the pool can be used; otherwise why not (blocking: reads the filesystem and, for
/// an NFS pool, `/proc/self/mountinfo`).
pub fn availability(pool: &Pool) -> Result<(), String> {
    match std::fs::metadata(&pool.dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a directory", pool.dir.display())),
        Err(e) => return Err(format!("directory {} is missing: {e}", pool.dir.display())),
    }
    let PoolKind::Nfs { .. } = &pool.kind else {
        return Ok(());
    };
    let expected = pool.kind.nfs_source().unwrap_or_default();
    let entries = limiquantix_storage::nfs::read_mountinfo().map_err(|e| e.to_string())?;
    match limiquantix_storage::nfs::find_mount(&entries, &pool.dir) {
        Some(m) if m.source == expected => Ok(()),
        Some(m) => Err(format!(
            "{} holds {} ({}), not the share {expected}",
            pool.dir.display(),
            m.source,
            m.fstype
        )),
        None => Err(format!(
            "the share {expected} is not mounted at {}",
            pool.dir.display()
        )),
    }
}
