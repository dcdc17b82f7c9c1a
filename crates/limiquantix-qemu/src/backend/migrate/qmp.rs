//! The QMP side of a migration, pure: command arguments and the reading of `query-migrate`.

use limiquantix_vm::migration::{MigrationParams, MigrationPhase, MigrationProgress};
use serde_json::{Value, json};

/// The bandwidth QEMU gets when the caller sets no limit (QEMU's own default is a low cap).
pub(super) const UNLIMITED_BANDWIDTH: u64 = 100 << 30;

/// `migrate-set-capabilities`: migration events, and auto-converge (the guest's vCPUs are
/// throttled when it dirties memory faster than the link carries it); with `pause`, the
/// migration waits at `pre-switchover` (guest stopped) until `migrate-continue`.
pub(super) fn capabilities(pause: bool) -> Value {
    json!({ "capabilities": [
        { "capability": "events", "state": true },
        { "capability": "auto-converge", "state": true },
        { "capability": "pause-before-switchover", "state": pause },
    ]})
}

/// `migrate-set-parameters`: the downtime limit, the bandwidth cap, and TLS: the credentials
/// [`super::tls::CREDS_ID`] and the name the target's certificate must carry between nodes,
/// none on this host (an earlier migration's setting undone).
pub(super) fn parameters(p: &MigrationParams) -> Value {
    let mut v = json!({
        "downtime-limit": p.max_downtime_ms,
        "max-bandwidth": p.max_bandwidth_bytes.unwrap_or(UNLIMITED_BANDWIDTH),
        "tls-creds": "",
    });
    if let Some(tls) = &p.tls {
        v["tls-creds"] = json!(super::tls::CREDS_ID);
        if let Some(name) = &tls.peer_name {
            v["tls-hostname"] = json!(name);
        }
    }
    v
}

/// What `query-migrate` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reading {
    /// Still going (or not started): the progress so far.
    Going(MigrationProgress),
    /// Done: the last progress, with the downtime.
    Done(MigrationProgress),
    /// Failed or cancelled, with QEMU's reason.
    Failed(String),
}

/// Reads `query-migrate`'s answer (lenient: absent figures are 0, unknown states are "going").
pub(super) fn read(v: &Value) -> Reading {
    let status = v.get("status").and_then(Value::as_str).unwrap_or("none");
    let ram = |k: &str| {
        v.get("ram")
            .and_then(|r| r.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let phase = match status {
        "none" | "setup" => MigrationPhase::Preparing,
        "device" | "pre-switchover" => MigrationPhase::Switching,
        "completed" => MigrationPhase::Complete,
        "failed" | "cancelled" | "cancelling" => {
            let why = v
                .get("error-desc")
                .and_then(Value::as_str)
                .unwrap_or(status);
            return Reading::Failed(why.to_owned());
        }
        _ => MigrationPhase::Transferring,
    };
    let progress = MigrationProgress {
        phase,
        transferred_bytes: ram("transferred"),
        remaining_bytes: ram("remaining"),
        total_bytes: ram("total"),
        downtime_ms: v.get("downtime").and_then(Value::as_u64),
    };
    if phase == MigrationPhase::Complete {
        Reading::Done(progress)
    } else {
        Reading::Going(progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_migrate_answers_are_read() {
        let active =
            json!({"status": "active", "ram": {"transferred": 10, "remaining": 30, "total": 40}});
        let Reading::Going(p) = read(&active) else {
            panic!("not going")
        };
        assert_eq!((p.phase, p.percent()), (MigrationPhase::Transferring, 25));
        let done = json!({"status": "completed", "downtime": 42, "ram": {"total": 40}});
        let Reading::Done(p) = read(&done) else {
            panic!("not done")
        };
        assert_eq!(p.downtime_ms, Some(42));
        let failed = json!({"status": "failed", "error-desc": "Unable to write to socket"});
        assert_eq!(
            read(&failed),
            Reading::Failed("Unable to write to socket".into())
        );
        assert!(matches!(read(&json!({})), Reading::Going(_)));
    }

    #[test]
    fn parameters_carry_the_limits() {
        let mut p = MigrationParams {
            uri: "unix:/x".into(),
            max_bandwidth_bytes: Some(8 << 20),
            max_downtime_ms: 250,
            storage: None,
            tls: None,
        };
        assert_eq!(
            parameters(&p),
            json!({"downtime-limit": 250, "max-bandwidth": 8 << 20, "tls-creds": ""})
        );
        p.tls = Some(limiquantix_vm::migration::MigrationTls {
            ca: "/ca".into(),
            cert: "/c".into(),
            key: "/k".into(),
            peer_name: Some("node2.example".into()),
        });
        let v = parameters(&p);
        assert_eq!(v["tls-creds"], "lq-migration-tls");
        assert_eq!(v["tls-hostname"], "node2.example");
    }
}
