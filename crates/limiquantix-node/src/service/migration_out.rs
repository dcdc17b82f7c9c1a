//! Live migration, the source's side: MigrateVM drives the whole move. It asks the target's
//! PrepareMigration with the VM's definition and seed, sends the guest through the backend with
//! progress streamed as MigrationProgress, then asks the target's ReceiveMigration to take the
//! guest over; only then does this node forget the VM. Any failure ends the stream with phase
//! FAILED and the reason, the guest running here in the same process, and the target told to
//! give its half up.

use limiquantix_proto::v1 as pb;
use limiquantix_vm::migration::{
    DEFAULT_MAX_DOWNTIME_MS, MigrationParams, MigrationPhase, MigrationProgress, MigrationTls,
    StorageCopy,
};
use limiquantix_vm::model::{CdromRole, VmId};
use limiquantix_vm::{VmBackend, VmState};
use std::sync::Arc;
use tokio::sync::mpsc;
use tonic::Status;

use super::core::{BoxStream, Inner, NodeService};
use crate::config::TlsFiles;
use crate::error::ApiError;
use crate::translate::parse_vm_id;

/// Where the wire progress goes.
type Out = mpsc::UnboundedSender<Result<pb::MigrationProgress, Status>>;

/// A checked MigrateVM request.
struct Plan {
    id: VmId,
    target: String,
    dial: Dial,
    params: MigrationParams,
    definition_json: String,
    seed_iso: Vec<u8>,
    storage: bool,
}

/// The wire form of a progress report.
fn wire(id: &VmId, p: &MigrationProgress, error: String) -> pb::MigrationProgress {
    let phase = match p.phase {
        MigrationPhase::Preparing => pb::MigrationPhase::Preparing,
        MigrationPhase::Transferring => pb::MigrationPhase::Transferring,
        MigrationPhase::Switching => pb::MigrationPhase::Switching,
        MigrationPhase::Complete => pb::MigrationPhase::Complete,
        MigrationPhase::Failed => pb::MigrationPhase::Failed,
    };
    pb::MigrationProgress {
        vm_id: id.to_string(),
        percent_complete: p.percent(),
        data_transferred_bytes: p.transferred_bytes,
        data_remaining_bytes: p.remaining_bytes,
        phase: phase as i32,
        error,
        downtime_ms: p.downtime_ms.unwrap_or(0),
    }
}

/// How the source reaches the target daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dial {
    /// A daemon on this host, at this API socket address.
    Local(String),
    /// Another node's TLS listener, with this node's certificate.
    Network {
        /// The host as given (a name or an IP address, without brackets).
        host: String,
        /// The client's address form, `tcp:HOST:PORT`.
        address: String,
        /// This node's TLS files; the target must carry `host` in its certificate.
        tls: MigrationTls,
    },
}

/// The target address: `unix:PATH` (or an absolute socket path), or `https://HOST:PORT` with
/// this node's TLS files.
fn check_target(target: &str, tls: &TlsFiles) -> Result<Dial, ApiError> {
    let field = "target_node_uri";
    let expected = "expected unix:PATH (a daemon on this host) or https://HOST:PORT (another \
                    node's TLS listener)";
    if target.is_empty() {
        return Err(ApiError::invalid(
            field,
            format!("the target daemon's API address is required: {expected}"),
        ));
    }
    if target.starts_with("unix:") || target.starts_with('/') {
        return Ok(Dial::Local(target.into()));
    }
    let Some(rest) = target.strip_prefix("https://") else {
        return Err(ApiError::invalid(field, format!("{target:?}: {expected}")));
    };
    let rest = rest.trim_end_matches('/');
    let parsed = rest.rsplit_once(':').and_then(|(host, port)| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        (super::migration::is_host(host) && port.parse::<u16>().is_ok_and(|p| p > 0))
            .then(|| host.to_string())
    });
    let Some(host) = parsed else {
        return Err(ApiError::invalid(
            field,
            format!("{target:?}: not https://HOST:PORT (a host name or IP address and a port)"),
        ));
    };
    let Some(tls) = super::migration::node_tls(tls, Some(host.clone())) else {
        return Err(ApiError::Precondition(format!(
            "target_node_uri {target:?} is another node: a migration between nodes needs this \
             node's TLS files (--tls-cert, --tls-key and --tls-client-ca, or [tls] cert, key \
             and client_ca): its certificate is presented to the target, whose certificate \
             must be signed by client_ca"
        )));
    };
    Ok(Dial::Network {
        address: format!("tcp:{rest}"),
        tls,
        host,
    })
}

/// Connects to the target daemon.
async fn connect(dial: &Dial) -> Result<limiquantix_proto::NodeClient, String> {
    let connected = match dial {
        Dial::Local(address) => limiquantix_proto::connect(address).await,
        Dial::Network { address, tls, .. } => {
            let options = limiquantix_proto::TlsOptions {
                ca_cert: Some(tls.ca.clone()),
                client_cert: Some(tls.cert.clone()),
                client_key: Some(tls.key.clone()),
                domain: None,
            };
            limiquantix_proto::connect_tls(address, &options).await
        }
    };
    connected.map_err(|e| format!("target: {e}"))
}

impl<B: VmBackend> NodeService<B> {
    /// MigrateVM: checks the request and the VM, then moves it in a task; the stream follows.
    pub(super) async fn migration_start(
        &self,
        req: pb::MigrateVmRequest,
    ) -> Result<BoxStream<pb::MigrationProgress>, ApiError> {
        let plan = self.migration_plan(req).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = self.inner.clone();
        tokio::spawn(async move { drive(inner, plan, tx).await });
        Ok(Box::pin(
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
        ))
    }

    async fn migration_plan(&self, req: pb::MigrateVmRequest) -> Result<Plan, ApiError> {
        let id = parse_vm_id("vm_id", &req.vm_id)?;
        let dial = check_target(&req.target_node_uri, &self.inner.config.tls)?;
        if !req.live {
            return Err(ApiError::invalid(
                "live",
                "only live migration is implemented: set live=true",
            ));
        }
        let params = MigrationParams {
            uri: String::new(),
            max_bandwidth_bytes: (req.max_bandwidth_bytes_per_sec > 0)
                .then_some(req.max_bandwidth_bytes_per_sec),
            max_downtime_ms: match req.max_downtime_ms {
                0 => DEFAULT_MAX_DOWNTIME_MS,
                ms => u64::from(ms),
            },
            storage: None,
            tls: match &dial {
                Dial::Local(_) => None,
                Dial::Network { tls, .. } => Some(tls.clone()),
            },
        };
        params.check().map_err(|e| {
            let (field, problem) = e.split_once(": ").unwrap_or(("", &e));
            ApiError::invalid(field, problem)
        })?;
        let backend = &self.inner.backend;
        let entry = backend.get(&id).await?;
        let state = entry.status.state;
        if state != VmState::Running {
            return Err(ApiError::Precondition(format!(
                "VM {id} is {state}: only a running VM can be migrated live (resume a paused one \
                 first)"
            )));
        }
        let definition_json = serde_json::to_string(&entry.definition)
            .map_err(|e| ApiError::Internal(format!("VM {id}: definition: {e}")))?;
        let has_seed = entry
            .definition
            .cdroms
            .iter()
            .any(|c| c.role == CdromRole::Seed);
        let seed_iso = if has_seed {
            let path = backend.seed_path(&id);
            tokio::fs::read(&path)
                .await
                .map_err(|e| ApiError::Internal(format!("VM {id}: reading its seed: {e}")))?
        } else {
            Vec::new()
        };
        Ok(Plan {
            id,
            target: req.target_node_uri,
            dial,
            params,
            definition_json,
            seed_iso,
            storage: req.storage,
        })
    }
}

/// Moves the VM and reports; the last message is COMPLETE or FAILED.
async fn drive<B: VmBackend>(inner: Arc<Inner<B>>, plan: Plan, out: Out) {
    let (id, target) = (plan.id.clone(), plan.target.clone());
    let preparing = MigrationProgress::phase(MigrationPhase::Preparing);
    let _ = out.send(Ok(wire(&id, &preparing, String::new())));
    match run(&inner, plan, &out).await {
        Ok(done) => {
            // The guest runs on the target: COMPLETE at once, then this node lets go of it
            // (the stream ends after that).
            let _ = out.send(Ok(wire(&id, &done, String::new())));
            if let Err(e) = inner.backend.complete_outgoing(&id, &target).await {
                tracing::error!(vm_id = %id, error = %e, "the guest runs on the target; cleaning up here failed");
            }
            tracing::info!(vm_id = %id, target = %target, "VM migrated out");
        }
        Err(why) => {
            tracing::warn!(vm_id = %id, error = %why, "migration failed");
            let failed = MigrationProgress::phase(MigrationPhase::Failed);
            let _ = out.send(Ok(wire(&id, &failed, why)));
        }
    }
}

/// The steps; an error is the reason reported in the FAILED message.
async fn run<B: VmBackend>(
    inner: &Inner<B>,
    plan: Plan,
    out: &Out,
) -> Result<MigrationProgress, String> {
    let id = plan.id.clone();
    let mut target = connect(&plan.dial).await?;
    let prepare = pb::PrepareMigrationRequest {
        vm_id: id.to_string(),
        source_node_uri: String::new(),
        definition_json: plan.definition_json,
        seed_iso: plan.seed_iso,
        storage: plan.storage,
        target_host: match &plan.dial {
            Dial::Local(_) => String::new(),
            Dial::Network { host, .. } => host.clone(),
        },
    };
    let token = target
        .prepare_migration(prepare)
        .await
        .map_err(|s| format!("the target refused the VM: {}", s.message()))?
        .into_inner();
    let mut params = plan.params;
    params.uri = token.incoming_uri.clone();
    if !token.copy_disks.is_empty() {
        params.storage = Some(StorageCopy {
            server: token.nbd_server.clone(),
            disks: token.copy_disks.clone(),
        });
    }
    let sent = send(inner, &id, params, out).await;
    let done = match sent {
        Ok(done) => done,
        Err(e) => {
            give_up(&mut target, &token).await;
            return Err(e);
        }
    };
    if let Err(s) = target.receive_migration(token.clone()).await {
        let _ = inner.backend.cancel_outgoing(&id).await;
        return Err(format!(
            "the target did not take the guest over: {}",
            s.message()
        ));
    }
    Ok(done)
}

/// The backend's migration, its progress forwarded; a caller that goes away cancels it.
async fn send<B: VmBackend>(
    inner: &Inner<B>,
    id: &VmId,
    params: MigrationParams,
    out: &Out,
) -> Result<MigrationProgress, String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let migrate = inner.backend.migrate(id, params, tx);
    tokio::pin!(migrate);
    let mut listening = true;
    loop {
        tokio::select! {
            r = &mut migrate => return r.map_err(|e| e.to_string()),
            p = rx.recv(), if listening => match p {
                Some(p) => {
                    if out.send(Ok(wire(id, &p, String::new()))).is_err() {
                        // Closing the progress channel cancels the migration.
                        rx.close();
                        listening = false;
                    }
                }
                None => listening = false,
            },
        }
    }
}

/// Tells the target to remove what it prepared (best effort: it also expires on its own).
async fn give_up(target: &mut limiquantix_proto::NodeClient, token: &pb::MigrationToken) {
    let mut abort = token.clone();
    abort.abort = true;
    if let Err(s) = target.receive_migration(abort).await {
        tracing::warn!(error = %s.message(), "the target could not give the migration up");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_files() -> TlsFiles {
        TlsFiles {
            cert: Some("/etc/lq/node.pem".into()),
            key: Some("/etc/lq/node.key".into()),
            client_ca: Some("/etc/lq/ca.pem".into()),
        }
    }

    #[test]
    fn targets_on_this_host_and_on_other_nodes() {
        let none = TlsFiles::default();
        assert_eq!(
            check_target("unix:/run/b.sock", &none).unwrap(),
            Dial::Local("unix:/run/b.sock".into())
        );
        let Dial::Network { host, address, tls } =
            check_target("https://node2.example:9443/", &tls_files()).unwrap()
        else {
            panic!("not a network target")
        };
        assert_eq!(
            (host.as_str(), address.as_str()),
            ("node2.example", "tcp:node2.example:9443")
        );
        assert_eq!(tls.peer_name.as_deref(), Some("node2.example"));
        assert_eq!(tls.ca, std::path::Path::new("/etc/lq/ca.pem"));
        let Dial::Network { host, .. } =
            check_target("https://[fd00::2]:9443", &tls_files()).unwrap()
        else {
            panic!("not a network target")
        };
        assert_eq!(host, "fd00::2");
    }

    #[test]
    fn bad_targets_and_missing_tls_files_are_refused() {
        for bad in [
            "",
            "tcp:10.0.0.2:9090",
            "https://",
            "https://host",
            "https://h:0",
            "https://a b:1",
            "http://h:1",
        ] {
            let e = check_target(bad, &tls_files()).unwrap_err();
            assert!(
                matches!(e, ApiError::InvalidArgument { .. }),
                "{bad}: {e:?}"
            );
            assert!(e.to_string().contains("target_node_uri"), "{bad}: {e}");
        }
        let e = check_target("https://10.0.0.2:9443", &TlsFiles::default()).unwrap_err();
        assert!(matches!(e, ApiError::Precondition(_)), "{e:?}");
        assert!(e.to_string().contains("--tls-client-ca"), "{e}");
    }
}
