//! `NodeHttpService`: the operator's side of the HTTP face over gRPC (`lqctl node token create`,
//! and the listeners and certificate fingerprint `lqctl node info` shows).

use super::tokens::{TokenError, TokenStore};
use limiquantix_proto::v1 as pb;
use limiquantix_proto::v1::node_http_service_server::{NodeHttpService, NodeHttpServiceServer};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// What the service reports and where it makes tokens.
#[derive(Clone)]
pub struct HttpAdmin {
    /// The token store (the daemon's state directory).
    pub tokens: Arc<TokenStore>,
    /// The listeners and certificate.
    pub info: pb::HttpInfo,
}

/// The gRPC service over `admin`.
pub fn server(admin: HttpAdmin) -> NodeHttpServiceServer<HttpAdmin> {
    NodeHttpServiceServer::new(admin)
}

fn timestamp(secs: u64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: secs as i64,
        nanos: 0,
    }
}

#[tonic::async_trait]
impl NodeHttpService for HttpAdmin {
    async fn create_registration_token(
        &self,
        request: Request<pb::CreateRegistrationTokenRequest>,
    ) -> Result<Response<pb::RegistrationToken>, Status> {
        let ttl = match request.into_inner().ttl_seconds {
            0 => None,
            s => Some(Duration::from_secs(s.into())),
        };
        let tokens = self.tokens.clone();
        let made = tokio::task::spawn_blocking(move || tokens.create(ttl))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| match e {
                TokenError::Ttl(_) => Status::invalid_argument(format!("ttl_seconds: {e}")),
                other => Status::internal(other.to_string()),
            })?;
        tracing::info!(expires_at = made.expires_at, "registration token made");
        Ok(Response::new(pb::RegistrationToken {
            token: made.token,
            created_at: Some(timestamp(made.created_at)),
            expires_at: Some(timestamp(made.expires_at)),
        }))
    }

    async fn get_http_info(&self, _: Request<()>) -> Result<Response<pb::HttpInfo>, Status> {
        Ok(Response::new(self.info.clone()))
    }
}
