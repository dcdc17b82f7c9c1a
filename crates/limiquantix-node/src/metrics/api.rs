//! Request counts and latency of the gRPC API, by method and status code: a tower layer on the
//! listeners records each call when its response headers leave (for a stream, when it starts).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Labels of a request: `method` (the RPC's name) and `code` (its gRPC status name).
pub type RequestLabels = Vec<(String, String)>;

/// The API's request metrics; cheap to clone (clones share the counters).
#[derive(Clone)]
pub struct ApiMetrics {
    /// `limiquantix_api_requests_total{method,code}`.
    pub requests: Family<RequestLabels, Counter>,
    /// `limiquantix_api_request_duration_seconds{method}`.
    pub duration: Family<RequestLabels, Histogram, fn() -> Histogram>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        fn histogram() -> Histogram {
            // 100 µs to ~26 s.
            Histogram::new(exponential_buckets(0.0001, 4.0, 10))
        }
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(histogram),
        }
    }
}

impl ApiMetrics {
    /// Records one call of `path` (`/package.Service/Method`) answered with `grpc_status`.
    pub fn record(&self, path: &str, grpc_status: Option<&str>, seconds: f64) {
        let method = path.rsplit('/').next().unwrap_or(path).to_string();
        let code = grpc_status
            .and_then(|s| s.parse::<i32>().ok())
            .map_or("OK".to_string(), |c| format!("{:?}", tonic::Code::from(c)));
        self.requests
            .get_or_create(&vec![
                ("method".into(), method.clone()),
                ("code".into(), code),
            ])
            .inc();
        self.duration
            .get_or_create(&vec![("method".into(), method)])
            .observe(seconds);
    }
}

/// The tower layer that records every call into an [`ApiMetrics`].
#[derive(Clone)]
pub struct ApiMetricsLayer(pub ApiMetrics);

impl<S> tower::Layer<S> for ApiMetricsLayer {
    type Service = ApiMetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ApiMetricsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// The service [`ApiMetricsLayer`] wraps around the routes.
#[derive(Clone)]
pub struct ApiMetricsService<S> {
    inner: S,
    metrics: ApiMetrics,
}

impl<S, B, RB> tower::Service<http::Request<B>> for ApiMetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            if let Ok(resp) = &r {
                let status = resp
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok());
                metrics.record(&path, status, started.elapsed().as_secs_f64());
            }
            r
        })
    }
}
