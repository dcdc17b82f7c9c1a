//! StreamMetrics: the host's CPU, memory, block devices and interfaces, and every running VM's
//! last usage sample (from the backend's collector), at the interval the client asks for.

use super::core::{BoxStream, NodeService};
use crate::metrics::host::HostSample;
use crate::translate::vm_metrics;
use limiquantix_proto::v1 as pb;
use limiquantix_vm::VmBackend;
use std::time::Duration;

/// The interval when the request gives none.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// The shortest interval served (a smaller request gets this).
pub(super) const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The interval of a request: `interval_seconds`, 0 = the default, at least [`MIN_INTERVAL`].
pub(super) fn interval_of(seconds: u32) -> Duration {
    match seconds {
        0 => DEFAULT_INTERVAL,
        s => Duration::from_secs(u64::from(s)).max(MIN_INTERVAL),
    }
}

impl<B: VmBackend> NodeService<B> {
    /// One NodeMetrics message: the host (rates since `prev`) and every running VM.
    pub async fn node_metrics(&self, prev: Option<&HostSample>) -> (pb::NodeMetrics, HostSample) {
        let host = tokio::task::spawn_blocking(HostSample::read)
            .await
            .unwrap_or_else(|_| HostSample::read_nothing());
        let mut m = host.node_metrics(prev);
        let usage = self.inner.backend.usage();
        if let Ok(entries) = self.inner.backend.list().await {
            m.vms = entries
                .iter()
                .filter_map(|e| {
                    let d = &e.definition;
                    usage.get(&d.id).map(|u| vm_metrics(d, u))
                })
                .collect();
        }
        (m, host)
    }

    /// The stream of StreamMetrics: a message at once, then one per interval, until the client
    /// goes away or the daemon shuts down.
    pub(super) fn metrics_stream(&self, interval_seconds: u32) -> BoxStream<pb::NodeMetrics> {
        let interval = interval_of(interval_seconds);
        let mut shutdown = self.inner.shutdown.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let service = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut prev: Option<HostSample> = None;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.wait_for(|s| *s) => break,
                    () = tx.closed() => break,
                }
                let (m, host) = service.node_metrics(prev.as_ref()).await;
                prev = Some(host);
                if tx.send(Ok(m)).await.is_err() {
                    break;
                }
            }
            tracing::debug!("a StreamMetrics subscriber went away");
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_default_to_5_s_and_never_go_under_1_s() {
        assert_eq!(interval_of(0), Duration::from_secs(5));
        assert_eq!(interval_of(1), Duration::from_secs(1));
        assert_eq!(interval_of(30), Duration::from_secs(30));
    }
}
