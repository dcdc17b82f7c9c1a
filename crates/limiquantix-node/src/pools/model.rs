//! What a pool is, and why pool operations fail.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where a pool comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The daemon's configuration.
    Config,
    /// InitStoragePool.
    Api,
}

/// What kind of storage a pool is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PoolKind {
    /// A local directory.
    #[default]
    LocalDir,
    /// An NFS share mounted at the pool's directory.
    Nfs {
        /// The server.
        server: String,
        /// The export on it.
        export_path: String,
        /// The NFS version asked for (empty: negotiated).
        #[serde(default)]
        version: String,
        /// Extra mount options.
        #[serde(default)]
        options: String,
    },
}

impl PoolKind {
    /// The share's `server:export` source, for an NFS pool.
    pub fn nfs_source(&self) -> Option<String> {
        match self {
            Self::LocalDir => None,
            Self::Nfs {
                server,
                export_path,
                ..
            } if server.contains(':') => Some(format!("[{server}]:{export_path}")),
            Self::Nfs {
                server,
                export_path,
                ..
            } => Some(format!("{server}:{export_path}")),
        }
    }
}

/// One pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Its directory (an NFS pool's mount point).
    pub dir: PathBuf,
    /// Where it comes from.
    pub origin: Origin,
    /// What it is.
    #[serde(default, flatten)]
    pub kind: PoolKind,
    /// A cap on what its volumes may be promised, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
    /// The node mounted the share (and unmounts it when the pool is destroyed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mounted_by_node: bool,
}

impl Pool {
    /// A local-directory pool.
    pub fn local(dir: PathBuf, origin: Origin, capacity_bytes: Option<u64>) -> Self {
        Self {
            dir,
            origin,
            kind: PoolKind::LocalDir,
            capacity_bytes,
            mounted_by_node: false,
        }
    }

    /// Whether `other` asks for the same pool (directory, kind and cap; not who mounted it).
    pub fn same_spec(&self, other: &Pool) -> bool {
        self.dir == other.dir
            && self.kind == other.kind
            && self.capacity_bytes == other.capacity_bytes
    }
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
        "{field}: {path:?} is outside the pool roots ({roots}); a pool made through \
         the API lives under one of them (the operator adds roots with pool_roots)"
    )]
    Outside {
        /// The request field.
        field: &'static str,
        /// The path asked for.
        path: String,
        /// The roots, for the message.
        roots: String,
    },
    /// The pool exists with another spec.
    #[error(
        "pool {id} is already defined differently ({existing}); InitStoragePool repeats only \
         the same spec: destroy the pool first to change it"
    )]
    Conflict {
        /// The pool.
        id: String,
        /// Its present spec, for the message.
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
