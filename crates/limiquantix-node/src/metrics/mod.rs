//! Metrics beside the gRPC server: the host's own figures ([`host`], for StreamMetrics and the
//! exporter), the Prometheus exporter ([`exporter`]: `/metrics` in the text exposition format,
//! opt-in with `--metrics-listen`) and the API's request counts and latency ([`api`], a tower
//! layer on the gRPC listeners). VM figures come from the backend's collector
//! (`VmBackend::usage`).

pub mod api;
pub mod exporter;
pub mod host;

#[cfg(test)]
mod tests;
