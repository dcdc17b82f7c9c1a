//! `lqctl node token create` and the HTTP face's line of `lqctl node info`, over the daemon's
//! `NodeHttpService`.

use anyhow::Context as _;
use clap::Subcommand;
use limiquantix_proto::v1::CreateRegistrationTokenRequest;
use limiquantix_proto::v1::node_http_service_client::NodeHttpServiceClient;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::daemon::CallExt as _;
use crate::output::{Format, print_structured};

/// Registration tokens for the control plane's Add Host.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a single-use registration token (shown once; the node keeps only its hash). The
    /// control plane's Add Host presents it; its discovery uses it up.
    Create {
        /// How long it stays valid: 60s to 7d (`90s`, `10m`, `1h`).
        #[arg(long, default_value = "1h", value_parser = crate::units::parse_duration)]
        ttl: std::time::Duration,
    },
}

/// What `node token create -o json` prints.
#[derive(Debug, Serialize)]
struct TokenView {
    token: String,
    created_at: String,
    expires_at: String,
}

/// Runs `node token ...`.
pub async fn token(ctx: &Ctx, command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Create { ttl } = command;
    let ttl_seconds = u32::try_from(ttl.as_secs()).context("--ttl is too long")?;
    let mut client = NodeHttpServiceClient::new(ctx.daemon.channel());
    let made = client
        .create_registration_token(CreateRegistrationTokenRequest { ttl_seconds })
        .await
        .or_fail(&ctx.daemon)?;
    let view = TokenView {
        token: made.token,
        created_at: made.created_at.map(|t| t.to_string()).unwrap_or_default(),
        expires_at: made.expires_at.map(|t| t.to_string()).unwrap_or_default(),
    };
    if ctx.format != Format::Table {
        return print_structured(&view, ctx.format);
    }
    println!("{}", view.token);
    eprintln!(
        "registration token valid until {} (single use; it is not shown again)",
        view.expires_at
    );
    Ok(())
}

/// The HTTP face as `node info` shows it.
#[derive(Debug, Serialize)]
pub struct HttpView {
    /// IP:PORT, or `null` when off.
    pub https_listen: Option<String>,
    /// IP:PORT, or `null` when off.
    pub image_http_listen: Option<String>,
    /// SHA-256 of the HTTPS certificate, `ab:cd:...`.
    pub cert_sha256_fingerprint: Option<String>,
    /// Whether the daemon made the certificate.
    pub self_signed: bool,
}

/// The HTTP face's listeners, or `None` from a daemon without the service.
pub async fn info(ctx: &Ctx) -> Option<HttpView> {
    let mut client = NodeHttpServiceClient::new(ctx.daemon.channel());
    let i = client.get_http_info(()).await.ok()?.into_inner();
    let some = |s: String| Some(s).filter(|s| !s.is_empty());
    Some(HttpView {
        https_listen: some(i.https_listen),
        image_http_listen: some(i.image_http_listen),
        cert_sha256_fingerprint: some(i.cert_sha256_fingerprint),
        self_signed: i.self_signed,
    })
}

/// The `http` line of `node info`.
pub fn line(view: Option<&HttpView>) -> String {
    let Some(v) = view else {
        return "off".into();
    };
    let mut parts = Vec::new();
    if let Some(l) = &v.https_listen {
        let fp = v.cert_sha256_fingerprint.as_deref().unwrap_or("?");
        let kind = if v.self_signed {
            "self-signed"
        } else {
            "operator's"
        };
        parts.push(format!("https://{l} ({kind} certificate, SHA-256 {fp})"));
    }
    if let Some(l) = &v.image_http_listen {
        parts.push(format!("http://{l} (image downloads)"));
    }
    if parts.is_empty() {
        "off".into()
    } else {
        parts.join("; ")
    }
}
