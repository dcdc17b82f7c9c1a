//! The metrics collector: one task samples every running VM on an interval and keeps the last
//! sample of each ([`UsageStore`]); status calls read the store and never wait.
//!
//! - [`procfs`]: the QEMU process's CPU time (`/proc/<pid>/stat`) and resident memory
//!   (`/proc/<pid>/status`), and tap interfaces' counters (`/sys/class/net`).
//! - [`blockstats`]: QMP `query-blockstats` answers, by disk.
//! - [`collector`]: the task, the CPU percent between two samples, and the store.

pub mod blockstats;
pub mod collector;
pub mod procfs;

pub use collector::{Target, UsageStore, cpu_percent};
