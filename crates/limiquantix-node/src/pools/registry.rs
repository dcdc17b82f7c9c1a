//! The pool registry, persisted as `<state>/pools.json`.
//!
//! A pool made through the API is a local directory under one of the pool roots (by default
//! `<state>/pools`; the operator adds roots with `pool_roots`), so a caller of the API cannot
//! turn an arbitrary host directory into a place VM disks are read from or written to. A pool
//! whose directory is missing at start is kept and reported, never dropped. Everything here
//! touches files: call from blocking context.

use super::model::{DestroyError, Origin, Pool, PoolError};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::RwLock;

/// The registry.
#[derive(Debug)]
pub struct PoolRegistry {
    file: PathBuf,
    roots: Vec<PathBuf>,
    pools: RwLock<BTreeMap<String, Pool>>,
}

impl PoolRegistry {
    /// Loads `<state>/pools.json` and adds the configured pools (the configuration wins for
    /// an id in both). `roots` are where API pools may be made.
    /// An unreadable registry file is logged and the configured pools are used alone.
    pub fn open(
        state_dir: &Path,
        configured: &BTreeMap<String, PathBuf>,
        roots: Vec<PathBuf>,
    ) -> Self {
        let file = state_dir.join("pools.json");
        let mut pools: BTreeMap<String, Pool> = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::error!(file = %file.display(), error = %e, "unreadable pool registry; starting from the configuration");
                BTreeMap::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::error!(file = %file.display(), error = %e, "cannot read the pool registry; starting from the configuration");
                BTreeMap::new()
            }
        };
        pools.retain(|_, p| p.origin == Origin::Api);
        for (id, dir) in configured {
            pools.insert(id.clone(), Pool::local(dir.clone(), Origin::Config, None));
        }
        for (id, p) in &pools {
            if !p.dir.is_dir() {
                tracing::warn!(pool = %id, dir = %p.dir.display(), "pool directory is missing: the pool is unavailable until it is back");
            }
        }
        Self {
            file,
            roots,
            pools: RwLock::new(pools),
        }
    }

    /// Every pool's directory, by id.
    pub fn dirs(&self) -> BTreeMap<String, PathBuf> {
        self.read()
            .iter()
            .map(|(id, p)| (id.clone(), p.dir.clone()))
            .collect()
    }

    /// One pool.
    pub fn get(&self, id: &str) -> Option<Pool> {
        self.read().get(id).cloned()
    }

    /// Every pool.
    pub fn all(&self) -> BTreeMap<String, Pool> {
        self.read().clone()
    }

    /// Makes (or finds again) local-directory pool `id` at `path` (empty: `<first root>/<id>`)
    /// with an optional cap. The same spec again is success with `false`; the directory is
    /// created (mode 0750) when missing.
    pub fn init_local(
        &self,
        id: &str,
        path: &str,
        capacity_bytes: Option<u64>,
    ) -> Result<(Pool, bool), PoolError> {
        check_id(id)?;
        let dir = self.place(id, "config.local.path", path)?;
        let want = Pool::local(dir, Origin::Api, capacity_bytes);
        if let Some(existing) = self.same_or_conflict(id, &want)? {
            return Ok((existing, false));
        }
        create_dir(&want.dir)?;
        self.insert(id, want)
    }

    /// The pool `id` when it exists with the spec of `want`; `None` when there is no such
    /// pool; [`PoolError::Conflict`] when it exists with another spec.
    pub fn same_or_conflict(&self, id: &str, want: &Pool) -> Result<Option<Pool>, PoolError> {
        match self.get(id) {
            None => Ok(None),
            Some(existing) if existing.same_spec(want) => Ok(Some(existing)),
            Some(existing) => Err(PoolError::Conflict {
                id: id.into(),
                existing: describe(&existing),
            }),
        }
    }

    /// Adds API pool `id` (whose directory exists) and saves the registry; the same spec again
    /// is success with `false`.
    pub fn insert(&self, id: &str, pool: Pool) -> Result<(Pool, bool), PoolError> {
        check_id(id)?;
        let mut pools = self.pools.write().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = pools.get(id) {
            return if existing.same_spec(&pool) {
                Ok((existing.clone(), false))
            } else {
                Err(PoolError::Conflict {
                    id: id.into(),
                    existing: describe(existing),
                })
            };
        }
        pools.insert(id.into(), pool.clone());
        if let Err(e) = self.save(&pools) {
            pools.remove(id);
            return Err(e);
        }
        Ok((pool, true))
    }

    /// Forgets API pool `id` and removes its directory when empty (a directory still holding
    /// files is kept, and said so). Configured pools are the configuration's to remove.
    /// Returns whether the directory was removed.
    pub fn destroy(&self, id: &str) -> Result<bool, DestroyError> {
        let mut pools = self.pools.write().unwrap_or_else(|p| p.into_inner());
        let pool = pools.get(id).cloned().ok_or(DestroyError::NotFound)?;
        if pool.origin == Origin::Config {
            return Err(DestroyError::Configured);
        }
        pools.remove(id);
        if let Err(e) = self.save(&pools) {
            pools.insert(id.to_string(), pool);
            return Err(DestroyError::Pool(e));
        }
        Ok(std::fs::remove_dir(&pool.dir).is_ok())
    }

    /// The directory of a new API pool (request field `field`): under a root, normalized;
    /// empty gives `<first root>/<id>`.
    pub fn place(&self, id: &str, field: &'static str, path: &str) -> Result<PathBuf, PoolError> {
        check_id(id)?;
        let outside = || PoolError::Outside {
            field,
            path: path.into(),
            roots: self
                .roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        if path.is_empty() {
            return self.roots.first().map(|r| r.join(id)).ok_or_else(outside);
        }
        let p = Path::new(path);
        let normal = p.is_absolute()
            && p.components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !normal || !self.roots.iter().any(|r| p.starts_with(r) && p != r) {
            return Err(outside());
        }
        Ok(p.to_owned())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Pool>> {
        self.pools.read().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, pools: &BTreeMap<String, Pool>) -> Result<(), PoolError> {
        let api: BTreeMap<_, _> = pools
            .iter()
            .filter(|(_, p)| p.origin == Origin::Api)
            .collect();
        let bytes = serde_json::to_vec_pretty(&api).map_err(|e| PoolError::Io {
            path: self.file.clone(),
            source: std::io::Error::other(e),
        })?;
        limiquantix_fs::write_atomic(&self.file, &bytes, 0o600).map_err(|e| PoolError::Io {
            path: e.path,
            source: e.source,
        })
    }
}

/// A pool's spec in words, for messages.
fn describe(p: &Pool) -> String {
    let cap = p
        .capacity_bytes
        .map(|c| format!(", capacity {c} bytes"))
        .unwrap_or_default();
    match p.kind.nfs_source() {
        Some(src) => format!("NFS {src} at {}{cap}", p.dir.display()),
        None => format!("directory {}{cap}", p.dir.display()),
    }
}

fn check_id(id: &str) -> Result<(), PoolError> {
    if limiquantix_vm::model::is_plain_name(id) {
        Ok(())
    } else {
        Err(PoolError::BadId(id.into()))
    }
}

/// Creates a pool directory (mode 0750) and its parents.
pub(super) fn create_dir(dir: &Path) -> Result<(), PoolError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(|source| PoolError::Io {
            path: dir.to_owned(),
            source,
        })
}
