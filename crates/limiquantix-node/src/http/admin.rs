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

impl HttpAdmin {
    /// Whether the HTTPS listener (where tokens are presented) is on.
    fn https_on(&self) -> bool {
        !self.info.https_listen.is_empty()
    }
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
        if !self.https_on() {
            return Err(Status::failed_precondition(
                "the HTTPS face is off, so no token could be presented: start the daemon with \
                 --http-listen IP:8443 ([http] listen)",
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_token_without_the_https_listener() {
        let dir = tempfile::tempdir().unwrap();
        let mut admin = HttpAdmin {
            tokens: Arc::new(TokenStore::open(dir.path())),
            info: pb::HttpInfo::default(),
        };
        let req = || Request::new(pb::CreateRegistrationTokenRequest { ttl_seconds: 0 });
        let off = admin.create_registration_token(req()).await.unwrap_err();
        assert_eq!(off.code(), tonic::Code::FailedPrecondition);
        assert!(off.message().contains("--http-listen"));
        admin.info.https_listen = "127.0.0.1:8443".into();
        let t = admin
            .create_registration_token(req())
            .await
            .unwrap()
            .into_inner();
        let (made, expires) = (t.created_at.unwrap(), t.expires_at.unwrap());
        assert_eq!(expires.seconds - made.seconds, 3600, "one hour by default");
        let bad = Request::new(pb::CreateRegistrationTokenRequest { ttl_seconds: 5 });
        let e = admin.create_registration_token(bad).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().starts_with("ttl_seconds"), "{}", e.message());
    }
}
