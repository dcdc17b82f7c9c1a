//! Unit tests of the NFS module (the mounts themselves are in the crate's `tests/nfs.rs`).

mod mount;
mod mountinfo;
mod spec;
