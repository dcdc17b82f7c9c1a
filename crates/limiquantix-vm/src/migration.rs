//! Live migration, as every backend sees it: the parameters of an outgoing migration, its
//! progress, and where an incoming one listens.
//!
//! The source backend sends the guest's memory and device state to the target's incoming
//! endpoint ([`crate::VmBackend::migrate`]); the target backend runs a hypervisor waiting for it
//! ([`crate::VmBackend::prepare_incoming`]). Disks are not copied here: with shared storage both
//! nodes open the same files.
//!
//! Between two daemons on one host the guest travels over a Unix socket; between nodes over
//! TCP with TLS and certificates checked both ways ([`MigrationTls`]), on a port of
//! [`MIGRATION_PORTS`].

use std::net::IpAddr;
use std::path::PathBuf;

/// The downtime limit when the caller gives none, in milliseconds.
pub const DEFAULT_MAX_DOWNTIME_MS: u64 = 300;
/// The largest downtime limit accepted, in milliseconds.
pub const MAX_DOWNTIME_MS: u64 = 60_000;
/// The smallest bandwidth limit accepted, in bytes per second (1 MiB/s).
pub const MIN_BANDWIDTH_BYTES: u64 = 1 << 20;

/// The TCP ports a target node listens on for incoming guests and their disks (QEMU's memory
/// stream and NBD), the range libvirt uses: open them between the nodes.
pub const MIGRATION_PORTS: std::ops::RangeInclusive<u16> = 49152..=49215;

/// The TLS files of a migration between nodes (PEM): the node's own certificate and key (a
/// server certificate on the target, a client certificate on the source: a node certificate
/// carries both uses) and the CA both nodes' certificates are signed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationTls {
    /// The CA bundle the peer's certificate must chain to.
    pub ca: PathBuf,
    /// This node's certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// Source only: the name the target's certificate must carry (the host the source dialed).
    pub peer_name: Option<String>,
}

/// Where an incoming migration is received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncomingNet {
    /// From a daemon on this host: over Unix sockets.
    Local,
    /// From another node: over TCP on `ip` (a port of [`MIGRATION_PORTS`]), with TLS.
    Network {
        /// The local address the source reaches this node at.
        ip: IpAddr,
        /// This node's certificate, key and CA.
        tls: MigrationTls,
    },
}

/// How an outgoing migration runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationParams {
    /// The target hypervisor's incoming address (from [`IncomingEndpoint::uri`]).
    pub uri: String,
    /// Bandwidth limit in bytes per second; `None`: the backend's default (no limit).
    pub max_bandwidth_bytes: Option<u64>,
    /// The longest the guest may stand still at switchover, in milliseconds.
    pub max_downtime_ms: u64,
    /// Disks to copy to the target before the memory (storage migration); `None`: the disks
    /// are shared.
    pub storage: Option<StorageCopy>,
    /// To another node: the TLS files and the target's name; `None`: a daemon on this host.
    pub tls: Option<MigrationTls>,
}

/// The disks a storage migration copies, and where the target serves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageCopy {
    /// The target's block export address (QEMU: the NBD server's Unix socket path, or
    /// `tcp:IP:PORT` between nodes).
    pub server: String,
    /// The device ids of the disks to copy (each exported under its id).
    pub disks: Vec<String>,
}

impl MigrationParams {
    /// Checks the limits: a downtime of 1 ms to [`MAX_DOWNTIME_MS`], a bandwidth of at least
    /// [`MIN_BANDWIDTH_BYTES`]. The error names the field, what was wrong and what is allowed.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=MAX_DOWNTIME_MS).contains(&self.max_downtime_ms) {
            return Err(format!(
                "max_downtime_ms: {} is out of range: 1 to {MAX_DOWNTIME_MS} milliseconds",
                self.max_downtime_ms
            ));
        }
        match self.max_bandwidth_bytes {
            Some(b) if b < MIN_BANDWIDTH_BYTES => Err(format!(
                "max_bandwidth: {b} bytes/s is too low: at least {MIN_BANDWIDTH_BYTES} (1 MiB/s)"
            )),
            _ => Ok(()),
        }
    }
}

/// Where a migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationPhase {
    /// Setting up (capabilities, parameters, the connection).
    Preparing,
    /// Copying memory while the guest runs.
    Transferring,
    /// The guest is stopped for the last pages and the device state.
    Switching,
    /// The target has the guest.
    Complete,
    /// It failed; the guest runs where it was.
    Failed,
}

/// One progress report of an outgoing migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationProgress {
    /// The phase.
    pub phase: MigrationPhase,
    /// Bytes of guest memory sent so far.
    pub transferred_bytes: u64,
    /// Bytes of guest memory still to send.
    pub remaining_bytes: u64,
    /// The guest's memory size.
    pub total_bytes: u64,
    /// The measured downtime (on [`MigrationPhase::Complete`]).
    pub downtime_ms: Option<u64>,
}

impl MigrationProgress {
    /// A report with no figures yet.
    pub fn phase(phase: MigrationPhase) -> Self {
        Self {
            phase,
            transferred_bytes: 0,
            remaining_bytes: 0,
            total_bytes: 0,
            downtime_ms: None,
        }
    }

    /// Percent done, 0 to 100 (100 once complete).
    pub fn percent(&self) -> u32 {
        if self.phase == MigrationPhase::Complete {
            return 100;
        }
        if self.total_bytes == 0 {
            return 0;
        }
        let done = self.total_bytes.saturating_sub(self.remaining_bytes);
        ((done.saturating_mul(100) / self.total_bytes).min(99)) as u32
    }
}

/// Where a prepared incoming migration listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingEndpoint {
    /// The hypervisor's migration address (QEMU: `unix:PATH` or `tcp:HOST:PORT`).
    pub uri: String,
    /// With a storage copy: the disks the target created empty and serves for the source to
    /// copy into.
    pub storage: Option<StorageCopy>,
}

/// Where progress reports of an outgoing migration go. A closed receiver cancels it.
pub type ProgressSender = tokio::sync::mpsc::UnboundedSender<MigrationProgress>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_with_the_field_named() {
        let mut p = MigrationParams {
            uri: "unix:/x".into(),
            max_bandwidth_bytes: None,
            max_downtime_ms: DEFAULT_MAX_DOWNTIME_MS,
            storage: None,
            tls: None,
        };
        assert!(p.check().is_ok());
        p.max_downtime_ms = 0;
        assert!(p.check().unwrap_err().starts_with("max_downtime_ms"));
        p.max_downtime_ms = 100;
        p.max_bandwidth_bytes = Some(1000);
        assert!(p.check().unwrap_err().starts_with("max_bandwidth"));
    }

    #[test]
    fn percent_never_claims_done_early() {
        let mut p = MigrationProgress::phase(MigrationPhase::Transferring);
        assert_eq!(p.percent(), 0);
        p.total_bytes = 200;
        p.remaining_bytes = 100;
        assert_eq!(p.percent(), 50);
        p.remaining_bytes = 0;
        assert_eq!(p.percent(), 99);
        p.phase = MigrationPhase::Complete;
        assert_eq!(p.percent(), 100);
    }
}
