//! The node's storage pools: those of the configuration (`--pool ID=DIR`) and those
//! InitStoragePool made, in one registry persisted as `<state>/pools.json`.
//!
//! A pool made through the API is a local directory under one of the pool roots (by default
//! `<state>/pools`; the operator adds roots with `pool_roots`), so a caller of the API cannot
//! turn an arbitrary host directory into a place VM disks are read from or written to. A pool
//! whose directory is missing at start is kept and reported, never dropped. Everything here
//! touches files: call from blocking context.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::RwLock;

/// Where a pool comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The daemon's configuration.
    Config,
    /// InitStoragePool.
    Api,
}

/// One pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Its directory.
    pub dir: PathBuf,
    /// Where it comes from.
    pub origin: Origin,
}

/// Why a pool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The pool id is not acceptable.
    #[error(
        "pool_id: {0:?} is not a pool id: 1 to 64 characters of letters, digits, '.', '_' and '-'"
    )]
    BadId(String),
    /// The directory is not under a pool root.
    #[error(
        "config.local.path: {path:?} is outside the pool roots ({roots}); a pool made through \
         the API lives under one of them (the operator adds roots with pool_roots)"
    )]
    Outside {
        /// The path asked for.
        path: String,
        /// The roots, for the message.
        roots: String,
    },
    /// The pool exists with another directory.
    #[error("pool {id} already exists with directory {existing}")]
    Conflict {
        /// The pool.
        id: String,
        /// Its directory.
        existing: String,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Why a pool cannot be destroyed.
#[derive(Debug, thiserror::Error)]
pub enum DestroyError {
    /// No such pool.
    #[error("storage pool not found on this node")]
    NotFound,
    /// The pool comes from the configuration.
    #[error("the pool comes from the daemon's configuration (--pool, [pools]); remove it there")]
    Configured,
    /// Saving the registry failed.
    #[error(transparent)]
    Pool(#[from] PoolError),
}

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
            pools.insert(
                id.clone(),
                Pool {
                    dir: dir.clone(),
                    origin: Origin::Config,
                },
            );
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

    /// Makes (or finds again) local-directory pool `id` at `path` (empty: `<first root>/<id>`).
    /// The same id with the same directory again is success with `false`; the directory is
    /// created (mode 0750) when missing.
    pub fn init_local(&self, id: &str, path: &str) -> Result<(Pool, bool), PoolError> {
        check_id(id)?;
        let dir = self.place(id, path)?;
        let mut pools = self.pools.write().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = pools.get(id) {
            return if existing.dir == dir {
                Ok((existing.clone(), false))
            } else {
                Err(PoolError::Conflict {
                    id: id.into(),
                    existing: existing.dir.display().to_string(),
                })
            };
        }
        create_dir(&dir)?;
        let pool = Pool {
            dir,
            origin: Origin::Api,
        };
        pools.insert(id.into(), pool.clone());
        self.save(&pools)?;
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

    /// The directory of a new API pool: under a root, normalized.
    fn place(&self, id: &str, path: &str) -> Result<PathBuf, PoolError> {
        let outside = || PoolError::Outside {
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

fn check_id(id: &str) -> Result<(), PoolError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(PoolError::BadId(id.into()))
    }
}

fn create_dir(dir: &Path) -> Result<(), PoolError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_pools_live_under_the_roots_persist_and_are_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("pools");
        let configured = BTreeMap::from([("conf".to_string(), tmp.path().join("c"))]);
        let reg = PoolRegistry::open(tmp.path(), &configured, vec![root.clone()]);
        let (p, created) = reg.init_local("a1b2", "").unwrap();
        assert!(created && p.dir == root.join("a1b2") && p.dir.is_dir());
        let (_, created) = reg.init_local("a1b2", "").unwrap();
        assert!(!created, "the same pool again is success");
        let dir = root.join("data").display().to_string();
        reg.init_local("d", &dir).unwrap();
        assert!(matches!(
            reg.init_local("d", "").unwrap_err(),
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
                    reg.init_local("e", bad).unwrap_err(),
                    PoolError::Outside { .. }
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            reg.init_local("../x", "").unwrap_err(),
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
}
