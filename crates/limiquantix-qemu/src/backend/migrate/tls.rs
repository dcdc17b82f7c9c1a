//! A migration between nodes travels over TCP with TLS: QEMU `tls-creds-x509` credentials made
//! from the node's own certificate files (both ends check the other's certificate against the
//! CA), and the ports a target listens on.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::backend::core::{QemuBackend, Result, blocking, create_private_dir, io_err};
use crate::backend::types::QemuError;
use crate::backend::vm::Vm;
use limiquantix_vm::BackendError;
use limiquantix_vm::migration::{MIGRATION_PORTS, MigrationTls};

/// The id of the QEMU object holding a VM's migration credentials.
pub(super) const CREDS_ID: &str = "lq-migration-tls";

/// Which end of the TLS connection a QEMU is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// The target: it listens.
    Server,
    /// The source: it connects.
    Client,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Server => "server",
            Endpoint::Client => "client",
        }
    }
}

/// The directory QEMU reads the credentials from: the file names it expects, linked to the
/// node's files (blocking). An unreadable file is a refusal naming it.
fn link_files(dir: &Path, tls: &MigrationTls, end: Endpoint) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    create_private_dir(dir)?;
    let e = end.name();
    for (file, name) in [
        (&tls.ca, "ca-cert.pem".to_string()),
        (&tls.cert, format!("{e}-cert.pem")),
        (&tls.key, format!("{e}-key.pem")),
    ] {
        let real = std::fs::canonicalize(file).map_err(|err| {
            QemuError::Refused(BackendError::Precondition(format!(
                "migration TLS file {}: {err}",
                file.display()
            )))
        })?;
        let link = dir.join(name);
        std::os::unix::fs::symlink(&real, &link).map_err(io_err(&link))?;
    }
    Ok(())
}

impl QemuBackend {
    /// Gives VM `vm`'s QEMU the credentials [`CREDS_ID`] from `tls`, as `end` (any earlier
    /// ones replaced); the peer's certificate is always verified.
    pub(super) async fn add_tls_creds(
        &self,
        vm: &Vm,
        tls: &MigrationTls,
        end: Endpoint,
    ) -> Result<()> {
        let dir: PathBuf = vm.paths.run_dir.join(format!("tls-{}", end.name()));
        let (d, t) = (dir.clone(), tls.clone());
        blocking(move || link_files(&d, &t, end)).await?;
        let _ = self
            .qmp_call(vm, "object-del", Some(json!({ "id": CREDS_ID })))
            .await;
        let creds = json!({
            "qom-type": "tls-creds-x509", "id": CREDS_ID, "dir": dir,
            "endpoint": end.name(), "verify-peer": true,
        });
        let added = self.qmp_call(vm, "object-add", Some(creds)).await;
        // QEMU read the files when the object was made: the links are not needed any more.
        let _ = tokio::fs::remove_dir_all(&dir).await;
        added.map(|_| ())
    }
}

/// A port of [`MIGRATION_PORTS`] free on `ip`, other than `taken` (blocking). QEMU binds it a
/// moment later; another process taking it between is an error of that migration only.
pub(super) fn free_port(ip: IpAddr, taken: &[u16]) -> Result<u16> {
    MIGRATION_PORTS
        .filter(|p| !taken.contains(p))
        .find(|&p| TcpListener::bind(SocketAddr::new(ip, p)).is_ok())
        .ok_or_else(|| {
            QemuError::Refused(BackendError::Precondition(format!(
                "no free migration port on {ip} (ports {}-{} are all in use or not allowed)",
                MIGRATION_PORTS.start(),
                MIGRATION_PORTS.end()
            )))
        })
}

/// QEMU's TCP address form: `HOST:PORT`, an IPv6 host in brackets.
pub(super) fn host_port(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_the_range_and_skip_taken_ones() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let first = free_port(ip, &[]).unwrap();
        assert!(MIGRATION_PORTS.contains(&first));
        let _held = TcpListener::bind(SocketAddr::new(ip, first)).unwrap();
        let second = free_port(ip, &[]).unwrap();
        assert_ne!(first, second);
        assert_ne!(free_port(ip, &[second]).unwrap(), second);
        assert_eq!(host_port("::1".parse().unwrap(), 5), "[::1]:5");
    }

    #[test]
    fn credentials_are_linked_under_qemus_names() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["ca.pem", "node.pem", "node.key"] {
            std::fs::write(dir.path().join(f), f).unwrap();
        }
        let tls = MigrationTls {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("node.pem"),
            key: dir.path().join("node.key"),
            peer_name: None,
        };
        let creds = dir.path().join("creds");
        link_files(&creds, &tls, Endpoint::Client).unwrap();
        let read = |n: &str| std::fs::read_to_string(creds.join(n)).unwrap();
        assert_eq!(read("ca-cert.pem"), "ca.pem");
        assert_eq!(read("client-cert.pem"), "node.pem");
        assert_eq!(read("client-key.pem"), "node.key");
        let missing = MigrationTls {
            key: dir.path().join("gone.key"),
            ..tls
        };
        let e = link_files(&creds, &missing, Endpoint::Server).unwrap_err();
        assert!(e.to_string().contains("gone.key"), "{e}");
    }
}
