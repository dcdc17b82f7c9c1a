//! The context every command that talks to the daemon gets.

use crate::daemon::Daemon;
use crate::output::Format;

/// What every command that talks to the daemon gets.
pub struct Ctx {
    /// The connected daemon.
    pub daemon: Daemon,
    /// The output format.
    pub format: Format,
    /// Whether human output may use colour.
    pub colour: bool,
}
