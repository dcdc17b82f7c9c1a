//! The cases of `http_face.rs`: one daemon, restarted once.

use super::*;

/// Add Host as the control plane runs it: ping, then /token and /discovery with the token.
async fn add_host(face: &Face) {
    let (code, ping) = face.get("/api/v1/registration/ping", None).await;
    assert_eq!(code, 200, "{ping}");
    assert_eq!(ping["status"], "ok");
    assert!(ping["version"].as_str().is_some_and(|v| !v.is_empty()));

    // No token yet: 404 on both.
    let (code, body) = face
        .get("/api/v1/registration/token", Some("lqreg-x"))
        .await;
    assert_eq!(code, 404, "{body}");
    let (code, _) = face
        .get("/api/v1/registration/discovery", Some("lqreg-x"))
        .await;
    assert_eq!(code, 404);

    let made = face
        .admin()
        .await
        .create_registration_token(pb::CreateRegistrationTokenRequest { ttl_seconds: 3600 })
        .await
        .unwrap()
        .into_inner();
    let token = made.token.as_str();
    let store =
        std::fs::read_to_string(face.node.state.join("http/registration-tokens.json")).unwrap();
    assert!(!store.contains(token), "the node keeps only a hash");

    // A wrong or missing token: 401 that does not read as "expired".
    for bearer in [Some("lqreg-wrong"), None] {
        let (code, body) = face.get("/api/v1/registration/token", bearer).await;
        assert_eq!(code, 401, "{body}");
        assert_ne!(body["error"], "token_expired");
        assert!(!body.to_string().contains("expired"), "{body}");
    }
    let (code, body) = face.get("/api/v1/registration/token", Some(token)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["token"], token);
    assert!(body["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert!(!body["hostname"].as_str().unwrap().is_empty());

    let (code, d) = face
        .get("/api/v1/registration/discovery", Some(token))
        .await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["hostname"], body["hostname"]);
    assert_eq!(d["managementIp"], "127.0.0.1");
    assert!(d["cpu"]["cores"].as_u64().unwrap() > 0, "{d}");
    assert!(d["cpu"]["threads"].as_u64().unwrap() > 0);
    assert!(!d["cpu"]["model"].as_str().unwrap().is_empty());
    assert!(d["memory"]["totalBytes"].as_u64().unwrap() > 0);
    assert!(d["storage"]["local"].is_array() && d["storage"]["iscsi"].is_array());
    assert_eq!(
        d["storage"]["nfs"],
        serde_json::json!([]),
        "no NFS pool here"
    );
    assert!(d["network"].is_array() && d["gpus"].is_array());
    for nic in d["network"].as_array().unwrap() {
        assert!(nic["name"].is_string() && nic["macAddress"].is_string());
    }

    // Single use: the discovery consumed it.
    let (code, body) = face
        .get("/api/v1/registration/discovery", Some(token))
        .await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["error"], "invalid_token");
    assert!(body["message"].as_str().unwrap().contains("already used"));
}

/// Clients outside the allow-list are closed on both listeners.
async fn allow_list(face: &Face) {
    let outside = client_from(Some("127.0.0.2".parse().unwrap()));
    for url in [
        format!("{}/api/v1/registration/ping", face.https),
        format!("{}/api/v1/images/download/x", face.http),
    ] {
        let r = outside.get(&url).send().await;
        assert!(r.is_err(), "{url} answered a client outside the allow-list");
    }
    // The plain listener serves only the download pair.
    let r = face
        .http_client
        .get(format!("{}/api/v1/registration/ping", face.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

async fn vm_endpoints(face: &Face) {
    let unknown = "6d0b1a52-62b4-4f3e-9d1e-6c1a6a1f9a01";
    let gets = [
        "logs?lines=50",
        "qemu-agent/ping",
        "agent/files/list?path=/etc&include_hidden=false",
        "agent/files/read?path=/etc/hostname",
    ];
    for p in gets {
        let (code, body) = face.get(&format!("/api/v1/vms/{unknown}/{p}"), None).await;
        assert_eq!(code, 404, "{p}: {body}");
    }
    let exec =
        serde_json::json!({"command": "uname -a", "timeoutSeconds": 30, "waitForExit": true});
    let (code, _) = face
        .post(
            &face.https,
            &format!("/api/v1/vms/{unknown}/execute"),
            exec.clone(),
        )
        .await;
    assert_eq!(code, 404);

    // A VM whose agent is absent (defined, not running).
    let mut grpc = face.node.client().await;
    let backing = face.node.small_image("base.qcow2");
    let id = "0f5c8d2e-3b8b-4d7e-a5b1-2f3a4b5c6d7e";
    grpc.create_vm(common::cloud_vm(id, "noagent", &backing))
        .await
        .unwrap();
    let (code, ping) = face
        .get(&format!("/api/v1/vms/{id}/qemu-agent/ping"), None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(ping["available"], false);
    assert!(
        ping["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{ping}"
    );
    let (code, body) = face
        .post(&face.https, &format!("/api/v1/vms/{id}/execute"), exec)
        .await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["success"], false);
    assert!(!body["error"].as_str().unwrap().is_empty());
    let (code, body) = face
        .get(
            &format!("/api/v1/vms/{id}/agent/files/list?path=/etc"),
            None,
        )
        .await;
    assert_eq!(code, 409, "{body}");
    let (code, body) = face
        .get(&format!("/api/v1/vms/{id}/logs?lines=10"), None)
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["vmId"], id);
    assert_eq!(body["vmName"], "noagent");
    let (code, body) = face
        .get(
            &format!("/api/v1/vms/{id}/agent/files/read?path=relative"),
            None,
        )
        .await;
    assert_eq!(code, 400, "{body}");
}

fn download_body(url: &str, target_dir: &str, checksum: &str) -> Value {
    serde_json::json!({
        "catalogId": "tiny-raw", "imageId": "img-1", "url": url,
        "targetDir": target_dir, "poolId": "pool", "checksum": checksum,
    })
}

async fn downloads(face: &Face) {
    let image = raw_image(300 * 1024);
    let base = file_server(image.clone(), None).await;
    let dir = face.node.pool.join("cloud-images").display().to_string();
    let path = "/api/v1/images/download";

    // Outside the pools, or with `..`: refused, nothing made.
    for bad in [
        "/tmp/elsewhere",
        &format!("{}/../x", face.node.pool.display()),
    ] {
        let body = download_body(&format!("{base}/a.raw"), bad, "");
        let (code, r) = face.post(&face.http, path, body).await;
        assert_eq!(code, 400, "{bad}: {r}");
        assert!(r["error"].as_str().unwrap().contains("targetDir"), "{r}");
    }
    assert!(!std::path::Path::new("/tmp/elsewhere").exists());

    // The right checksum: completed, the file in the pool.
    let body = download_body(&format!("{base}/good.raw"), &dir, &sha256(&image));
    let (code, r) = face.post(&face.http, path, body).await;
    assert_eq!(code, 200, "{r}");
    let job = r["jobId"].as_str().unwrap().to_string();
    let target = r["targetPath"].as_str().unwrap().to_string();
    assert_eq!(target, format!("{dir}/good.raw"));
    let done = face.job_until(&job, |j| j["status"] != "downloading").await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["progressPercent"], 100);
    assert_eq!(done["bytesDownloaded"], image.len() as u64);
    assert_eq!(done["targetPath"], target.as_str());
    assert_eq!(done["imageId"], "img-1");
    assert_eq!(done["catalogId"], "tiny-raw");
    assert_eq!(std::fs::read(&target).unwrap(), image);

    // A wrong checksum: failed, nothing published.
    let body = download_body(&format!("{base}/bad.raw"), &dir, &"0".repeat(64));
    let (code, r) = face.post(&face.https, path, body).await;
    assert_eq!(code, 200, "{r}");
    let job = r["jobId"].as_str().unwrap();
    let done = face.job_until(job, |j| j["status"] != "downloading").await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(!done["errorMessage"].as_str().unwrap().is_empty());
    assert!(!std::path::Path::new(&format!("{dir}/bad.raw")).exists());

    let (code, _) = face.get("/api/v1/images/download/no-such-job", None).await;
    assert_eq!(code, 404);
}

/// A slow transfer, the daemon killed in the middle: nothing published meanwhile, and the
/// restarted daemon resumes the job under its id. The restart also shows the certificate kept
/// and an expired token answered `token_expired`.
async fn restart(face: &mut Face) {
    let image = raw_image(1536 * 1024);
    let base = file_server(image.clone(), Some(Duration::from_millis(150))).await;
    let dir = face.node.pool.join("cloud-images").display().to_string();
    let body = download_body(&format!("{base}/slow.raw"), &dir, &sha256(&image));
    let (code, r) = face.post(&face.http, "/api/v1/images/download", body).await;
    assert_eq!(code, 200, "{r}");
    let job = r["jobId"].as_str().unwrap().to_string();
    let target = r["targetPath"].as_str().unwrap().to_string();
    face.job_until(&job, |j| j["bytesDownloaded"].as_u64().unwrap_or(0) > 0)
        .await;
    let before = face
        .admin()
        .await
        .get_http_info(())
        .await
        .unwrap()
        .into_inner();
    assert!(before.self_signed && !before.cert_sha256_fingerprint.is_empty());

    let expiring = face
        .admin()
        .await
        .create_registration_token(pb::CreateRegistrationTokenRequest { ttl_seconds: 60 })
        .await
        .unwrap()
        .into_inner()
        .token;
    face.node.kill();
    assert!(
        !std::path::Path::new(&target).exists(),
        "a half file is never published"
    );
    let store = face.node.state.join("http/registration-tokens.json");
    let mut tokens: Value = serde_json::from_slice(&std::fs::read(&store).unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for t in tokens.as_array_mut().unwrap() {
        t["expires_at"] = Value::from(now - 1);
    }
    std::fs::write(&store, tokens.to_string()).unwrap();
    face.node.start();

    let after = face
        .admin()
        .await
        .get_http_info(())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        after.cert_sha256_fingerprint, before.cert_sha256_fingerprint,
        "cert reused"
    );
    let (code, body) = face
        .get("/api/v1/registration/token", Some(&expiring))
        .await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["error"], "token_expired");

    let done = face.job_until(&job, |j| j["status"] != "downloading").await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(std::fs::read(&target).unwrap(), image);
    assert!(
        face.node
            .log_text()
            .contains("download job resumed after a restart")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_face_as_the_control_plane_calls_it() {
    let mut face = Face::start();
    add_host(&face).await;
    allow_list(&face).await;
    vm_endpoints(&face).await;
    downloads(&face).await;
    restart(&mut face).await;
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(face.node.state.join("http/tls-key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    face.node.terminate();
}
