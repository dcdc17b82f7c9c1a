//! The VM tabs of the HTTP face on the real guest, requested as the control plane's proxy sends
//! them (HTTPS without certificate check): logs, QEMU agent ping, execute, files list and read.

use serde_json::Value;

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.expect("HTTPS request");
    let code = r.status().as_u16();
    let bytes = r.bytes().await.unwrap_or_default();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Every VM tab on the running guest `id`, through the HTTPS listener at `base`.
pub async fn vm_tabs(base: &str, id: &str) {
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let vm = format!("{base}/api/v1/vms/{id}");

    let (code, logs) = call(http.get(format!("{vm}/logs?lines=50"))).await;
    assert_eq!(code, 200, "{logs}");
    assert_eq!(logs["vmId"], id);
    assert!(logs["linesReturned"].as_u64().unwrap() > 0, "{logs}");
    assert!(logs["qemuLog"].as_str().is_some_and(|l| !l.is_empty()));
    assert!(
        logs["serialLog"]
            .as_str()
            .is_some_and(|l| l.contains("login") || !l.is_empty())
    );

    let (code, ping) = call(http.get(format!("{vm}/qemu-agent/ping"))).await;
    assert_eq!(code, 200);
    assert_eq!(ping["available"], true, "{ping}");

    let body = serde_json::json!({
        "command": "printf 'hello from the tab\\n' > /root/lq-note.txt; uname -s; exit 4",
        "timeoutSeconds": 30,
        "waitForExit": true,
    });
    let exec = http
        .post(format!("{vm}/execute"))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    let (code, r) = call(exec).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["exitCode"], 4, "{r}");
    assert_eq!(r["success"], false);
    assert_eq!(r["stdout"], "Linux\n");
    assert_eq!(r["timedOut"], false);
    assert!(r["durationMs"].is_u64());

    let (code, list) = call(http.get(format!(
        "{vm}/agent/files/list?path=/root&include_hidden=true"
    )))
    .await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["success"], true, "{list}");
    let entries = list["entries"].as_array().unwrap();
    let note = entries
        .iter()
        .find(|e| e["name"] == "lq-note.txt")
        .unwrap_or_else(|| panic!("no lq-note.txt in {list}"));
    assert_eq!(note["path"], "/root/lq-note.txt");
    assert_eq!(note["isDirectory"], false);
    assert_eq!(note["sizeBytes"], 19);
    assert_eq!(note["owner"], "root");
    let (_, hidden) = call(http.get(format!("{vm}/agent/files/list?path=/root"))).await;
    let names: Vec<&str> = hidden["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    let (_, etc) = call(http.get(format!("{vm}/agent/files/list?path=/"))).await;
    let etc_dir = etc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "etc")
        .cloned();
    assert_eq!(etc_dir.unwrap()["isDirectory"], true);

    let (code, read) =
        call(http.get(format!("{vm}/agent/files/read?path=/root/lq-note.txt"))).await;
    assert_eq!(code, 200, "{read}");
    assert_eq!(read["success"], true);
    assert_eq!(read["content"], "hello from the tab\n");
    assert_eq!(read["sizeBytes"], 19);
    let (code, missing) = call(http.get(format!("{vm}/agent/files/read?path=/root/none"))).await;
    assert!(code >= 400, "{missing}");
    assert_eq!(missing["success"], false);
}
