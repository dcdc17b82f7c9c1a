//! The RPCs this daemon does not implement yet, and what each waits for.

use crate::error::ApiError;
use tonic::{Response, Status};

/// What each unimplemented RPC waits for.
pub const PENDING: &[(&str, &str)] = &[];

/// The UNIMPLEMENTED answer of `method` (every RPC is implemented today; kept for the next).
#[allow(dead_code)]
pub fn answer<T>(method: &'static str) -> Result<Response<T>, Status> {
    let waits_for = PENDING
        .iter()
        .find(|(m, _)| *m == method)
        .map_or("a later release", |(_, w)| w);
    Err(ApiError::Unimplemented { method, waits_for }.into())
}
