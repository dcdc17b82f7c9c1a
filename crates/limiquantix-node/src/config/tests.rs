//! Tests of the configuration layers and their resolution.

use super::*;
use limiquantix_vm::accel::Accel;
use std::path::Path;
use std::time::Duration;

const FILE: &str = r#"
state_dir = "/srv/lq/state"
run_dir = "/srv/lq/run"
listen = ["unix:/srv/lq/run/api.sock"]
accel = "tcg"
images_dir = "/srv/lq/images"
log_format = "json"
stop_timeout_seconds = 30
max_request_bytes = 1048576

[pools]
fast = "/srv/pools/fast"
"#;

fn env(pairs: &[(&str, &str)]) -> Layer {
    Layer::from_env(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
}

#[test]
fn defaults_are_documented_values() {
    let c = Config::resolve(&[]).unwrap();
    assert_eq!(c.state_dir, Path::new("/var/lib/limiquantix"));
    assert_eq!(c.run_dir, Path::new("/run/limiquantix"));
    assert_eq!(
        c.listen,
        vec![ListenAddr::Unix(
            "/run/limiquantix/limiquantix-node.sock".into()
        )]
    );
    assert_eq!(c.images_dir, Path::new("/var/lib/limiquantix/images"));
    assert_eq!(c.accel, Accel::Auto);
    assert!(c.pools.is_empty());
    assert_eq!(c.stop_timeout, Duration::from_secs(120));
    assert_eq!(c.max_request_bytes, 16 << 20);
}

#[test]
fn the_example_file_documents_the_defaults() {
    let example = include_str!("../../../../packaging/limiquantix-node.toml");
    let file = Layer::from_toml(example).unwrap();
    assert_eq!(
        Config::resolve(&[("config file", file)]).unwrap(),
        Config::resolve(&[]).unwrap()
    );
}

#[test]
fn file_values_are_honoured() {
    let file = Layer::from_toml(FILE).unwrap();
    let c = Config::resolve(&[("config file", file)]).unwrap();
    assert_eq!(c.state_dir, Path::new("/srv/lq/state"));
    assert_eq!(c.run_dir, Path::new("/srv/lq/run"));
    assert_eq!(
        c.listen,
        vec![ListenAddr::Unix("/srv/lq/run/api.sock".into())]
    );
    assert_eq!(c.accel, Accel::Tcg);
    assert_eq!(c.images_dir, Path::new("/srv/lq/images"));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.pools["fast"], Path::new("/srv/pools/fast"));
    assert_eq!(c.stop_timeout, Duration::from_secs(30));
    assert_eq!(c.max_request_bytes, 1 << 20);
}

#[test]
fn env_overrides_file_and_flags_override_env() {
    let file = Layer::from_toml(FILE).unwrap();
    let env = env(&[
        ("LQ_STATE_DIR", "/env/state"),
        ("LQ_ACCEL", "kvm"),
        ("LQ_POOLS", "a=/env/a, b=/env/b"),
        ("UNRELATED", "x"),
    ]);
    let flags = Layer {
        accel: Some("auto".into()),
        ..Layer::default()
    };
    let c =
        Config::resolve(&[("config file", file), ("environment", env), ("flag", flags)]).unwrap();
    assert_eq!(c.state_dir, Path::new("/env/state"), "env beats file");
    assert_eq!(c.accel, Accel::Auto, "flag beats env");
    assert_eq!(c.run_dir, Path::new("/srv/lq/run"), "file beats default");
    assert_eq!(
        c.pools.len(),
        2,
        "a later pool table replaces the earlier one"
    );
    assert_eq!(c.pools["b"], Path::new("/env/b"));
    assert_eq!(c.images_dir, Path::new("/srv/lq/images"));
}

#[test]
fn images_dir_defaults_under_the_resolved_state_dir() {
    let c = Config::resolve(&[("flag", env(&[("LQ_STATE_DIR", "/x")]))]).unwrap();
    assert_eq!(c.images_dir, Path::new("/x/images"));
    assert_eq!(
        c.listen,
        vec![ListenAddr::Unix(
            "/run/limiquantix/limiquantix-node.sock".into()
        )]
    );
}

#[test]
fn tcp_without_tls_is_refused_with_a_clear_error() {
    let flags = Layer {
        listen: Some(vec!["tcp:0.0.0.0:7443".into()]),
        ..Layer::default()
    };
    let err = Config::resolve(&[("flag", flags)]).unwrap_err().to_string();
    assert!(err.contains("only served with TLS"), "{err}");
    assert!(err.contains("plaintext+tcp:"), "{err}");
    assert!(err.starts_with("flag listen"), "{err}");
}

#[test]
fn tcp_with_tls_is_accepted() {
    let env = env(&[
        ("LQ_LISTEN", "tcp:127.0.0.1:7443,unix:/tmp/a.sock"),
        ("LQ_TLS_CERT", "/c.pem"),
        ("LQ_TLS_KEY", "/k.pem"),
    ]);
    let c = Config::resolve(&[("environment", env)]).unwrap();
    assert_eq!(c.listen.len(), 2);
    assert_eq!(c.tls.cert.as_deref(), Some(Path::new("/c.pem")));
}

#[test]
fn bad_values_name_the_source_and_key() {
    let err = Config::resolve(&[("environment", env(&[("LQ_ACCEL", "xen")]))])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("environment accel") && err.contains("auto, kvm, tcg"),
        "{err}"
    );
    let err = Layer::from_toml("state_dri = \"/x\"").unwrap_err();
    assert!(err.contains("state_dri"), "{err}");
    let err = "unix:relative".parse::<ListenAddr>().unwrap_err();
    assert!(err.contains("absolute"), "{err}");
    assert!(
        Layer::from_env([("LQ_POOLS".into(), "nodir".into())])
            .unwrap_err()
            .to_string()
            .contains("ID=DIR")
    );
}

#[test]
fn control_plane_keys_merge_across_sources() {
    let file = Layer::from_toml(
        "[control_plane]\nurl = \"http://file:8080\"\nheartbeat_interval = 5\n\
         management_ip = \"192.168.0.53\"\n",
    )
    .unwrap();
    let c = Config::resolve(&[("config file", file.clone())]).unwrap();
    let cp = c.control_plane.unwrap();
    assert_eq!(cp.url, "http://file:8080");
    assert_eq!(cp.heartbeat_interval, Duration::from_secs(5));
    let url = env(&[("LQ_CONTROL_PLANE", "http://env:8080/")]);
    let c = Config::resolve(&[("config file", file), ("environment", url)]).unwrap();
    let cp = c.control_plane.unwrap();
    assert_eq!(cp.url, "http://env:8080", "env beats file, key by key");
    assert_eq!(cp.heartbeat_interval, Duration::from_secs(5));
    assert_eq!(cp.management_ip, Some("192.168.0.53".parse().unwrap()));
    assert_eq!(Config::resolve(&[]).unwrap().control_plane, None);
    let bad = env(&[("LQ_CONTROL_PLANE", "cp.example:8080")]);
    let err = Config::resolve(&[("environment", bad)])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("environment control_plane: url"), "{err}");
}

#[test]
fn plaintext_needs_an_allow_list() {
    let flags = Layer {
        listen: Some(vec!["plaintext+tcp:10.0.0.5:9090".into()]),
        ..Layer::default()
    };
    let err = Config::resolve(&[("flag", flags)]).unwrap_err().to_string();
    assert!(
        err.starts_with("flag listen")
            && err.contains("--allow-from")
            && err.contains("allow_from"),
        "{err}"
    );
    let err = "plaintext+tcp:host:9090".parse::<ListenAddr>().unwrap_err();
    assert!(err.contains("plaintext+tcp:10.0.0.5:9090"), "{err}");
    let err = "http:1.2.3.4:5".parse::<ListenAddr>().unwrap_err();
    assert!(err.contains("plaintext+tcp:HOST:PORT"), "{err}");
}

#[test]
fn plaintext_with_an_allow_list_from_each_source() {
    let file = Layer::from_toml(
        "listen = [\"plaintext+tcp:10.0.0.5:9090\"]\nallow_from = [\"10.0.0.2\", \"fd00::/8\"]\n",
    )
    .unwrap();
    let c = Config::resolve(&[("config file", file.clone())]).unwrap();
    assert_eq!(
        c.listen,
        vec![ListenAddr::Plaintext("10.0.0.5:9090".into())]
    );
    assert_eq!(c.listen[0].to_string(), "plaintext+tcp:10.0.0.5:9090");
    assert_eq!(describe_allow_list(&c.allow_from), "10.0.0.2/32, fd00::/8");
    assert!(
        c.tls.cert.is_none(),
        "a plaintext listener needs no TLS files"
    );
    let env = env(&[("LQ_ALLOW_FROM", "192.168.1.0/24")]);
    let c = Config::resolve(&[("config file", file), ("environment", env)]).unwrap();
    assert_eq!(describe_allow_list(&c.allow_from), "192.168.1.0/24");
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["allow_from"], serde_json::json!(["192.168.1.0/24"]));
    assert_eq!(
        json["listen"],
        serde_json::json!(["plaintext+tcp:10.0.0.5:9090"])
    );
}

#[test]
fn allow_list_mistakes_name_the_source() {
    let err = Config::resolve(&[("environment", env(&[("LQ_ALLOW_FROM", "10.0.0.2")]))])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("environment allow_from") && err.contains("no plaintext+tcp: listener"),
        "{err}"
    );
    let flags = Layer {
        listen: Some(vec!["plaintext+tcp:0.0.0.0:9090".into()]),
        allow_from: Some(vec!["10.0.0.0/40".into()]),
        ..Layer::default()
    };
    let err = Config::resolve(&[("flag", flags)]).unwrap_err().to_string();
    assert!(
        err.starts_with("flag allow_from") && err.contains("0 to 32"),
        "{err}"
    );
}

#[test]
fn the_control_plane_address_is_the_default_allow_list() {
    let listen = [ListenAddr::Plaintext("0.0.0.0:9090".into())];
    let origins = resolve::Origins::default();
    let cp = "10.0.0.2".parse().ok();
    let list = resolve::allow_list(&listen, None, cp, &origins).unwrap();
    assert_eq!(describe_allow_list(&list), "10.0.0.2/32");
    let given = Some(vec!["10.9.0.0/16".to_string()]);
    let list = resolve::allow_list(&listen, given, cp, &origins).unwrap();
    assert_eq!(
        describe_allow_list(&list),
        "10.9.0.0/16",
        "a given list wins"
    );
    assert!(resolve::allow_list(&listen, None, None, &origins).is_err());
}

#[test]
fn the_control_plane_url_gives_the_default_allow_list() {
    let file = |url: &str| {
        Layer::from_toml(&format!(
            "listen = [\"plaintext+tcp:0.0.0.0:9090\"]\n[control_plane]\nurl = \"{url}\"\n"
        ))
        .unwrap()
    };
    let c = Config::resolve(&[("config file", file("http://10.0.0.2:8080"))]).unwrap();
    assert_eq!(describe_allow_list(&c.allow_from), "10.0.0.2/32");
    let c = Config::resolve(&[("config file", file("http://[fd00::2]:8080/"))]).unwrap();
    assert_eq!(describe_allow_list(&c.allow_from), "fd00::2/128");
    let given = env(&[("LQ_ALLOW_FROM", "10.0.0.0/24")]);
    let c = Config::resolve(&[
        ("config file", file("http://10.0.0.2:8080")),
        ("environment", given),
    ])
    .unwrap();
    assert_eq!(describe_allow_list(&c.allow_from), "10.0.0.0/24");
    let err = Config::resolve(&[("config file", file("http://cp.example:8080"))])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--allow-from"),
        "a DNS name is no default: {err}"
    );
}

#[test]
fn http_listeners_need_an_allow_list_and_take_it() {
    let http = |listen: &str| crate::config::HttpLayer {
        listen: Some(listen.into()),
        ..Default::default()
    };
    let alone = Layer {
        http: Some(http("127.0.0.1:8443")),
        ..Layer::default()
    };
    let err = Config::resolve(&[("flag", alone.clone())])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("allow-list") && err.contains("--allow-from"),
        "{err}"
    );
    let allowed = Layer {
        allow_from: Some(vec!["10.0.0.2".into()]),
        ..alone
    };
    let c = Config::resolve(&[("flag", allowed)]).unwrap();
    assert_eq!(describe_allow_list(&c.allow_from), "10.0.0.2/32");
    assert_eq!(c.http.listen, Some("127.0.0.1:8443".parse().unwrap()));
    let bad = Layer {
        http: Some(http("nowhere")),
        allow_from: Some(vec!["10.0.0.2".into()]),
        ..Layer::default()
    };
    let err = Config::resolve(&[("flag", bad)]).unwrap_err().to_string();
    assert!(err.contains("http") && err.contains("IP:PORT"), "{err}");
}

#[test]
fn concurrency_caps_default_and_out_of_range_ones_are_refused() {
    let c = Config::resolve(&[]).unwrap();
    assert_eq!(
        (c.max_concurrent_starts, c.max_concurrent_disk_creations),
        (4, 8)
    );
    let c = Config::resolve(&[(
        "environment",
        env(&[
            ("LQ_MAX_CONCURRENT_STARTS", "1"),
            ("LQ_MAX_CONCURRENT_DISK_CREATIONS", "32"),
        ]),
    )])
    .unwrap();
    assert_eq!(
        (c.max_concurrent_starts, c.max_concurrent_disk_creations),
        (1, 32)
    );
    let err = Config::resolve(&[("environment", env(&[("LQ_MAX_CONCURRENT_STARTS", "0")]))])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("max_concurrent_starts") && err.contains("1..=1024"),
        "{err}"
    );
}
