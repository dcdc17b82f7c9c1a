//! The RPCs this daemon does not implement yet, and what each waits for.

use crate::error::ApiError;
use tonic::{Response, Status};

/// What each unimplemented RPC waits for.
pub const PENDING: &[(&str, &str)] = &[
    ("PrepareMigration", "live migration (not scheduled yet)"),
    ("ReceiveMigration", "live migration (not scheduled yet)"),
    ("MigrateVM", "live migration (not scheduled yet)"),
];

/// The UNIMPLEMENTED answer of `method`.
pub fn answer<T>(method: &'static str) -> Result<Response<T>, Status> {
    let waits_for = PENDING
        .iter()
        .find(|(m, _)| *m == method)
        .map_or("a later release", |(_, w)| w);
    Err(ApiError::Unimplemented { method, waits_for }.into())
}
