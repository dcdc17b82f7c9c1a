//! Live migration, the target's side of the daemon-to-daemon protocol: PrepareMigration and
//! ReceiveMigration (the source's side, MigrateVM, is in `migration_out`).
//!
//! The rules, as the API states them:
//! - a pool with the same id and directory on both nodes is shared: its disks are not copied;
//! - without storage copy, a disk the target cannot reach is a refusal at prepare, never a
//!   silent copy;
//! - the seed CD-ROM travels as bytes and is stored unchanged (same instance-id: cloud-init does
//!   not provision again);
//! - every host path of the definition must lie in this node's images directory or pools;
//! - PrepareMigration answers a single-use token, valid for [`TOKEN_TTL`]: ReceiveMigration with
//!   it takes the guest over (or, with `abort`, gives the prepared VM up); an unused token
//!   expires and the prepared VM is removed. The target keeps nothing of a failed migration;
//! - from another node (`target_host` set) the guest and its disks arrive over TCP with TLS,
//!   on a port of [`limiquantix_vm::migration::MIGRATION_PORTS`], each node's certificate
//!   checked against the CA of `[tls] client_ca`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::core::{Inner, NodeService};
use crate::config::TlsFiles;
use crate::error::ApiError;
use crate::translate::{model_error, parse_vm_id};
use limiquantix_proto::v1 as pb;
use limiquantix_vm::migration::{IncomingNet, MigrationTls};
use limiquantix_vm::model::{CdromRole, DiskSource, VmDefinition, VmId};
use limiquantix_vm::{VmBackend, VmState};

/// How long a prepared migration waits for the source.
pub const TOKEN_TTL: Duration = Duration::from_secs(300);
/// How often a prepared migration's hypervisor is looked at.
const WATCH: Duration = Duration::from_secs(1);
/// How long ReceiveMigration waits for the guest to run here.
const FINISH_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest definition document accepted.
const MAX_DEFINITION: usize = 1 << 20;
/// The largest seed accepted.
const MAX_SEED: usize = 16 << 20;

/// The prepared incoming migrations: token → VM.
#[derive(Debug, Default)]
pub(super) struct IncomingTable {
    tokens: Mutex<BTreeMap<String, VmId>>,
}

impl IncomingTable {
    fn insert(&self, token: String, id: VmId) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token, id);
    }

    /// Takes a token (single use); `None` when unknown, used or expired.
    fn take(&self, token: &str) -> Option<VmId> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token)
    }
}

/// Reads the definition a source sent, for VM `id` (seed CD-ROM moved to this node's seed path).
fn incoming_definition<B: VmBackend>(
    backend: &B,
    id: &VmId,
    req: &pb::PrepareMigrationRequest,
) -> Result<VmDefinition, ApiError> {
    let field = "definition_json";
    if req.definition_json.is_empty() {
        return Err(ApiError::invalid(field, "the VM's definition is required"));
    }
    if req.definition_json.len() > MAX_DEFINITION {
        return Err(ApiError::TooLarge {
            field: field.into(),
            problem: format!("at most {MAX_DEFINITION} bytes"),
        });
    }
    if req.seed_iso.len() > MAX_SEED {
        return Err(ApiError::TooLarge {
            field: "seed_iso".into(),
            problem: format!("at most {MAX_SEED} bytes"),
        });
    }
    let mut def: VmDefinition = serde_json::from_str(&req.definition_json)
        .map_err(|e| ApiError::invalid(field, format!("not a VM definition: {e}")))?;
    if &def.id != id {
        return Err(ApiError::invalid(
            field,
            format!("it defines VM {}, not vm_id {id}", def.id),
        ));
    }
    for c in def.cdroms.iter_mut().filter(|c| c.role == CdromRole::Seed) {
        if req.seed_iso.is_empty() {
            return Err(ApiError::invalid(
                "seed_iso",
                "the definition has a seed CD-ROM: its bytes are required",
            ));
        }
        c.path = Some(backend.seed_path(id));
    }
    Ok(def)
}

/// Storage migration: each disk made in the VM's own directory on an overlay gets this node's
/// copy of its backing image, found by file name in the images directory, then in the pools
/// (blocking). A missing image is a refusal naming it.
fn find_backings<B>(inner: &Inner<B>, mut def: VmDefinition) -> Result<VmDefinition, ApiError> {
    let mut dirs = vec![inner.config.images_dir.clone()];
    dirs.extend(inner.pool_dirs().into_values());
    for (i, d) in def.disks.iter_mut().enumerate() {
        let DiskSource::Overlay { backing, .. } = &mut d.source else {
            continue;
        };
        if def.disk_dirs.contains_key(&d.id) {
            continue;
        }
        let Some(name) = backing.file_name().map(|n| n.to_owned()) else {
            continue;
        };
        let Some(found) = dirs.iter().map(|dir| dir.join(&name)).find(|p| p.is_file()) else {
            return Err(ApiError::Precondition(format!(
                "disks[{i}] ({}): backing image {:?} is not on this node (looked in the images \
                 directory and the pools); import it here first",
                d.id,
                name.to_string_lossy()
            )));
        };
        *backing = found;
    }
    Ok(def)
}

/// Every host path of `def` must lie in this node's images directory or pools (blocking).
fn confine_definition<B>(inner: &Inner<B>, def: &VmDefinition) -> Result<(), ApiError> {
    let confine = inner.confinement();
    let check = |field: String, p: &std::path::Path| -> Result<(), ApiError> {
        confine.check(&field, &p.display().to_string())?;
        Ok(())
    };
    for (i, d) in def.disks.iter().enumerate() {
        match &d.source {
            DiskSource::Path { path } => check(format!("disks[{i}].source.path"), path)?,
            DiskSource::Overlay { backing, .. } => {
                check(format!("disks[{i}].source.backing"), backing)?
            }
            DiskSource::Blank { .. } => {}
        }
    }
    let pools: Vec<PathBuf> = inner
        .pool_dirs()
        .into_values()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    for (disk, dir) in &def.disk_dirs {
        let here = std::fs::canonicalize(dir).ok();
        if !here.is_some_and(|d| pools.contains(&d)) {
            return Err(ApiError::Precondition(format!(
                "disk_dirs[{disk}]: {} is not a storage pool of this node; a shared disk needs a \
                 pool with the same id and directory on both nodes",
                dir.display()
            )));
        }
    }
    for (i, c) in def.cdroms.iter().enumerate() {
        if let (Some(p), false) = (&c.path, c.role == CdromRole::Seed) {
            check(format!("cdroms[{i}].path"), p)?;
        }
    }
    if let Some(k) = &def.direct_kernel {
        check("direct_kernel.kernel".into(), &k.kernel)?;
        if let Some(initrd) = &k.initrd {
            check("direct_kernel.initrd".into(), initrd)?;
        }
    }
    Ok(())
}

/// The guest's memory must fit in what this node has available (`MemAvailable`, bytes; 0:
/// unknown, not checked).
fn check_memory(def: &VmDefinition, available: u64) -> Result<(), ApiError> {
    let needed = def.memory.mib << 20;
    if available > 0 && needed > available {
        return Err(ApiError::Precondition(format!(
            "VM {} needs {} MiB of memory; this node has {} MiB available",
            def.id,
            def.memory.mib,
            available >> 20
        )));
    }
    Ok(())
}

/// Where the guest arrives: over Unix sockets from this host (no `target_host`), or over TCP
/// with TLS on the local address `target_host` names (an IP address, or a name resolving to
/// one of this node's addresses).
async fn incoming_net(tls: &TlsFiles, target_host: &str) -> Result<IncomingNet, ApiError> {
    let field = "target_host";
    if target_host.is_empty() {
        return Ok(IncomingNet::Local);
    }
    if !is_host(target_host) {
        return Err(ApiError::invalid(
            field,
            format!("{target_host:?}: not a host name or IP address"),
        ));
    }
    let Some(tls) = node_tls(tls, None) else {
        return Err(ApiError::Precondition(
            "this node has no TLS files for a migration from another node: set --tls-cert, \
             --tls-key and --tls-client-ca (or [tls] cert, key and client_ca)"
                .into(),
        ));
    };
    let candidates: Vec<IpAddr> = match target_host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((target_host, 0))
            .await
            .map_err(|e| ApiError::invalid(field, format!("{target_host:?}: {e}")))?
            .map(|a| a.ip())
            .collect(),
    };
    // One of this node's own addresses: binding to it works.
    let ip = candidates
        .into_iter()
        .find(|ip| std::net::TcpListener::bind((*ip, 0)).is_ok())
        .ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("{target_host:?} is not an address of this node"),
            )
        })?;
    Ok(IncomingNet::Network { ip, tls })
}

/// A host name or IP address as a migration names it: non-empty, at most 253 characters of
/// letters, digits, `.`, `-` and `:` (IPv6, without brackets).
pub(super) fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
}

/// This node's TLS files as a migration between nodes uses them (its certificate and key, and
/// the CA of `client_ca` for the peer); `None` when one of the three is not configured.
pub(super) fn node_tls(tls: &TlsFiles, peer_name: Option<String>) -> Option<MigrationTls> {
    Some(MigrationTls {
        ca: tls.client_ca.clone()?,
        cert: tls.cert.clone()?,
        key: tls.key.clone()?,
        peer_name,
    })
}

impl<B: VmBackend> NodeService<B> {
    /// PrepareMigration: checks the definition, starts a hypervisor waiting for the guest and
    /// answers a single-use token with the incoming address.
    pub(super) async fn migration_prepare(
        &self,
        req: pb::PrepareMigrationRequest,
    ) -> Result<pb::MigrationToken, ApiError> {
        let id = parse_vm_id("vm_id", &req.vm_id)?;
        let backend = &self.inner.backend;
        let def = incoming_definition(backend.as_ref(), &id, &req)?;
        let (inner, storage) = (self.inner.clone(), req.storage);
        let def = tokio::task::spawn_blocking(move || {
            let def = if storage {
                find_backings(&inner, def)?
            } else {
                def
            };
            confine_definition(&inner, &def)?;
            let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
            check_memory(&def, crate::hostinfo::parse_meminfo(&meminfo).available)?;
            Ok::<_, ApiError>(def)
        })
        .await??;
        let valid = def.into_valid().map_err(model_error)?;
        let net = incoming_net(&self.inner.config.tls, &req.target_host).await?;
        let seed = (!req.seed_iso.is_empty()).then_some(req.seed_iso);
        let endpoint = backend.prepare_incoming(valid, seed, storage, net).await?;
        let (nbd_server, copy_disks) = endpoint
            .storage
            .map(|c| (c.server, c.disks))
            .unwrap_or_default();
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.inner.migrations.insert(token.clone(), id.clone());
        self.expire_later(token.clone(), id.clone());
        tracing::info!(vm_id = %id, "incoming migration prepared");
        Ok(pb::MigrationToken {
            token,
            vm_id: id.to_string(),
            expires_at: Some((SystemTime::now() + TOKEN_TTL).into()),
            incoming_uri: endpoint.uri,
            abort: false,
            nbd_server,
            copy_disks,
        })
    }

    /// Removes the prepared VM when its token was not used in time, or at once when its
    /// hypervisor ends first (the source gave the migration up, or it failed).
    fn expire_later(&self, token: String, id: VmId) {
        let inner = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + TOKEN_TTL;
            let why = loop {
                tokio::time::sleep(WATCH).await;
                let Some(inner) = inner.upgrade() else { return };
                if tokio::time::Instant::now() >= deadline {
                    break "migration token expired";
                }
                match inner.backend.get(&id).await {
                    Ok(e) if e.status.state == VmState::Migrating => {}
                    Ok(e) if e.status.state.is_active() => return,
                    Ok(_) => break "the waiting hypervisor ended",
                    Err(_) => return,
                }
            };
            let Some(inner) = inner.upgrade() else { return };
            if inner.migrations.take(&token).is_some() {
                tracing::warn!(vm_id = %id, "{why}; removing the prepared VM");
                if let Err(e) = inner.backend.abort_incoming(&id).await {
                    tracing::warn!(vm_id = %id, error = %e, "cannot remove the prepared VM");
                }
            }
        });
    }

    /// ReceiveMigration: with a valid token, waits for the guest and takes it over (a failure
    /// removes the prepared VM); with `abort`, removes the prepared VM.
    pub(super) async fn migration_receive(&self, t: pb::MigrationToken) -> Result<(), ApiError> {
        let id = parse_vm_id("vm_id", &t.vm_id)?;
        let denied = || {
            ApiError::PermissionDenied(format!(
                "token: not a valid migration token for VM {id} (unknown, already used or expired)"
            ))
        };
        let owner = self.inner.migrations.take(&t.token).ok_or_else(denied)?;
        if owner != id {
            self.inner.migrations.insert(t.token.clone(), owner);
            return Err(denied());
        }
        let backend = &self.inner.backend;
        if t.abort {
            tracing::info!(vm_id = %id, "incoming migration given up by the source");
            return Ok(backend.abort_incoming(&id).await?);
        }
        match backend.finish_incoming(&id, FINISH_TIMEOUT).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!(vm_id = %id, error = %e, "incoming migration failed");
                let _ = backend.abort_incoming(&id).await;
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod net_tests {
    use super::*;

    #[tokio::test]
    async fn the_incoming_side_is_local_or_on_an_address_of_this_node() {
        let tls = TlsFiles {
            cert: Some("/etc/lq/node.pem".into()),
            key: Some("/etc/lq/node.key".into()),
            client_ca: Some("/etc/lq/ca.pem".into()),
        };
        assert_eq!(
            incoming_net(&TlsFiles::default(), "").await.unwrap(),
            IncomingNet::Local
        );
        let IncomingNet::Network { ip, tls: got } = incoming_net(&tls, "127.0.0.1").await.unwrap()
        else {
            panic!("not a network migration")
        };
        assert_eq!(ip, IpAddr::from([127, 0, 0, 1]));
        assert_eq!((got.peer_name, got.ca), (None, "/etc/lq/ca.pem".into()));
        let e = incoming_net(&TlsFiles::default(), "127.0.0.1")
            .await
            .unwrap_err();
        assert!(matches!(e, ApiError::Precondition(_)), "{e:?}");
        // TEST-NET-1: documentation addresses, never this node's.
        let e = incoming_net(&tls, "192.0.2.1").await.unwrap_err();
        assert!(e.to_string().contains("not an address of this node"), "{e}");
        let e = incoming_net(&tls, "a b").await.unwrap_err();
        assert!(e.to_string().contains("target_host"), "{e}");
    }
}
