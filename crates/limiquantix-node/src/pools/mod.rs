//! The node's storage pools: those of the configuration (`--pool ID=DIR`) and those
//! InitStoragePool made (local directories and NFS shares), in one registry persisted as
//! `<state>/pools.json`, and whether each is usable right now.

mod health;
mod model;
mod registry;
#[cfg(test)]
mod tests;

pub use health::availability;
pub use model::{DestroyError, Origin, Pool, PoolError, PoolKind};
pub use registry::PoolRegistry;
