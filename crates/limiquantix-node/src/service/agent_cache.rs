//! The cache of the guest agents' answers, by VM (see [`super::agent`] for how it is used).

use limiquantix_proto::v1 as pb;
use limiquantix_vm::model::VmId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an agent's answer stays current.
pub(super) const FRESH: Duration = Duration::from_secs(10);

/// The cached answers, by VM.
#[derive(Default)]
pub(super) struct AgentCache {
    entries: Mutex<HashMap<VmId, Entry>>,
}

#[derive(Default)]
struct Entry {
    /// The last answer (connected or not); `None` before the first attempt ended.
    info: Option<pb::GuestAgentInfo>,
    /// When the last attempt ended.
    asked: Option<Instant>,
    /// An attempt is under way.
    asking: bool,
}

impl AgentCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<VmId, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the VM's entry.
    pub(super) fn forget(&self, id: &VmId) {
        self.lock().remove(id);
    }

    /// The cached answer, and whether it is stale.
    pub(super) fn peek(&self, id: &VmId) -> (Option<pb::GuestAgentInfo>, bool) {
        let mut entries = self.lock();
        let e = entries.entry(id.clone()).or_default();
        let stale = e.asked.is_none_or(|t| t.elapsed() >= FRESH);
        (e.info.clone(), stale)
    }

    /// Marks the entry as being asked; false when an attempt is already under way.
    pub(super) fn claim(&self, id: &VmId) -> bool {
        let mut entries = self.lock();
        let e = entries.entry(id.clone()).or_default();
        !std::mem::replace(&mut e.asking, true)
    }

    /// Records an attempt's outcome; returns the connection change, if any.
    pub(super) fn record(&self, id: &VmId, info: pb::GuestAgentInfo) -> Option<bool> {
        let mut entries = self.lock();
        let e = entries.entry(id.clone()).or_default();
        let was = e.info.as_ref().map(|i| i.connected);
        let now = info.connected;
        e.info = Some(info);
        e.asked = Some(Instant::now());
        e.asking = false;
        (was != Some(now) && (now || was == Some(true))).then_some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_changes_are_reported_once() {
        let cache = AgentCache::default();
        let id = VmId::parse("0d6b5c3e-8f1a-4c2b-9e7d-1a2b3c4d5e6f").unwrap();
        let up = pb::GuestAgentInfo {
            connected: true,
            ..Default::default()
        };
        let down = pb::GuestAgentInfo::default();
        // Not answering from the start is no change.
        assert_eq!(cache.record(&id, down.clone()), None);
        assert_eq!(cache.record(&id, up.clone()), Some(true));
        assert_eq!(cache.record(&id, up.clone()), None);
        assert_eq!(cache.record(&id, down.clone()), Some(false));
        assert_eq!(cache.record(&id, down), None);
        // A fresh answer is current; a forgotten VM's is not, and one attempt at a time claims it.
        assert!(!cache.peek(&id).1);
        cache.forget(&id);
        assert!(cache.peek(&id).1);
        assert!(cache.claim(&id));
        assert!(!cache.claim(&id), "an attempt is already under way");
    }
}
