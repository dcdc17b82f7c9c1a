//! The reduced schema check (only the sub-schemas of a document's top-level keys) gives the
//! same findings as the whole of cloud-init's installed schema: over the validation tests'
//! documents, the UI's cloud-config, the default user-data, and for every top-level key of the
//! schema a set of right and wrong values, alone and together.

use std::collections::BTreeSet;

use limiquantix_cloudinit::DefaultUserData;
use limiquantix_cloudinit::validate::raw_index::RawIndex;
use limiquantix_cloudinit::validate::schema::{Schema, locate_schema};
use limiquantix_cloudinit::yaml11;
use serde_json::{Value, json};

fn schema() -> std::sync::Arc<Schema> {
    let path = locate_schema().expect(
        "required tool `cloud-init` is not installed: its JSON schema was not found \
         (apt-get install cloud-init)",
    );
    Schema::load(&path).unwrap()
}

/// The documents of the validation tests (the schema tests here and lqctl's seed tests).
const CORPUS: &[&str] = &[
    "hostname: web1\nusers:\n  - name: admin\n    lock_passwd: maybe\n",
    "",
    "ssh_pwauth: yes\n",
    "runcmd: 5\n",
    "hostnme: typo\nusers:\n  - name: a\n    lock-passwd: true\n",
    "hostname: web1\n",
    "users:\n  - name: a\n    lock_passwd: maybe\n",
    "users:\n  - default\n  - name: b\n    groups: [a, b]\n    sudo: ALL=(ALL) NOPASSWD:ALL\n",
    "packages: [qemu-guest-agent]\npackage_update: true\nruncmd:\n  - [systemctl, enable, --now, x]\n",
    "write_files:\n  - path: /etc/x\n    content: hi\n    defer: maybe\n",
    "chpasswd:\n  list: |\n    root:secret\n  expire: false\n",
    "apt:\n  sources:\n    x:\n      source: deb http://x y z\n",
    "locale: C.UTF-8\ntimezone: 5\n",
    "bootcmd: [[echo, 1]]\nmounts: [[a, b, c]]\nswap: {size: 1}\n",
];

fn key_names(raw: &Value) -> BTreeSet<String> {
    let defs = &raw["$defs"];
    let mut keys = BTreeSet::new();
    for member in raw["allOf"].as_array().unwrap() {
        let name = member["$ref"]
            .as_str()
            .unwrap()
            .trim_start_matches("#/$defs/");
        keys.extend(
            defs[name]["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned(),
        );
    }
    keys
}

fn values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(5),
        json!(-1.5),
        json!("x"),
        json!(true),
        json!([]),
        json!([5]),
        json!(["x", "y"]),
        json!([["a", "b"]]),
        json!({}),
        json!({"x": 1}),
        json!({"enabled": "maybe", "list": 3}),
        json!([{"name": 5}]),
        json!([{"name": "a", "lock_passwd": "maybe", "path": 3}]),
    ]
}

fn same(schema: &Schema, text: &str) -> bool {
    let doc = yaml11::load(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
    let reduced = schema.check(&doc).unwrap();
    let full = schema.check_full(&doc).unwrap();
    assert_eq!(reduced, full, "the reduced check differs on:\n{text}");
    !full.errors.is_empty()
}

#[test]
fn the_installed_schema_is_reducible() {
    let path = locate_schema().expect("cloud-init's schema");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        RawIndex::parse(&text).is_some(),
        "cloud-init's schema changed shape: the whole is always used"
    );
}

#[test]
fn the_validation_corpus_gets_the_same_findings() {
    let schema = schema();
    let ui = include_str!("fixtures/limiquantix-ui-user-data.yaml");
    let default = String::from_utf8(
        DefaultUserData::new("web1")
            .ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG8x user@host")
            .to_yaml()
            .unwrap(),
    )
    .unwrap();
    let mut errors = 0;
    for text in CORPUS.iter().copied().chain([ui, default.as_str()]) {
        errors += usize::from(same(&schema, text));
    }
    assert!(
        errors >= 4,
        "the corpus lost its invalid documents ({errors})"
    );
}

#[test]
fn every_key_with_right_and_wrong_values_gets_the_same_findings() {
    let path = locate_schema().expect("cloud-init's schema");
    let raw: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let schema = schema();
    let keys = key_names(&raw);
    assert!(keys.len() > 50, "{}", keys.len());
    let (mut docs, mut failing) = (0, 0);
    for (i, value) in values().iter().enumerate() {
        // Each key alone, and every key at once (each with its neighbour's value as well).
        let mut all = serde_json::Map::new();
        for (j, key) in keys.iter().enumerate() {
            let doc = json!({ key: value });
            failing += usize::from(same(&schema, &serde_json::to_string(&doc).unwrap()));
            all.insert(key.clone(), values()[(i + j) % values().len()].clone());
            docs += 1;
        }
        all.insert("not_a_key".into(), json!(1));
        failing += usize::from(same(&schema, &serde_json::to_string(&all).unwrap()));
    }
    assert!(
        failing > docs / 2,
        "{failing} of {docs} failed: too few errors exercised"
    );
}
