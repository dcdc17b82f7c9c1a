//! The workspace's crate graph, as `cargo metadata` reports it: every dependency of a workspace
//! crate on another (normal, dev and build) is an edge the tables below allow; and the daemon's
//! library speaks to `limiquantix-vm`'s trait, naming the QEMU backend in `main.rs` only.
//!
//! When the graph is meant to change, change the tables here (and the crate section of
//! ARCHITECTURE.md) in the same commit.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use limiquantix_test_support::workspace_root;

/// Where the tables are, for the failure messages.
const TABLE_FILE: &str = "crates/limiquantix-test-support/tests/crate_graph.rs";

/// The test-support crate: every crate may use it as a dev-dependency, none as anything else.
const TEST_SUPPORT: &str = "limiquantix-test-support";

/// Every crate of the workspace, with the workspace crates it may use as normal dependencies
/// (without features). A crate may also use each of them as a dev-dependency.
const NORMAL: &[(&str, &[&str])] = &[
    ("limiquantix-fs", &[]),
    ("limiquantix-cloudinit", &["limiquantix-fs"]),
    ("limiquantix-vm", &[]),
    ("limiquantix-storage", &["limiquantix-vm", "limiquantix-fs"]),
    (
        "limiquantix-qemu",
        &["limiquantix-vm", "limiquantix-storage", "limiquantix-fs"],
    ),
    ("limiquantix-proto", &[]),
    (
        "limiquantix-node",
        &[
            "limiquantix-vm",
            "limiquantix-storage",
            "limiquantix-cloudinit",
            "limiquantix-proto",
            "limiquantix-fs",
            "limiquantix-qemu",
        ],
    ),
    ("lqctl", &["limiquantix-proto", "limiquantix-cloudinit"]),
    // Finds binaries by the path its caller passes: it needs no crate of the workspace.
    (TEST_SUPPORT, &[]),
];

/// Dev-dependencies beyond [`NORMAL`] and [`TEST_SUPPORT`]: (crate, dependency, features). The
/// `fixtures` features are test data of the crates below, for the tests of the crates above.
const DEV_EXTRA: &[(&str, &str, &[&str])] = &[
    ("limiquantix-qemu", "limiquantix-vm", &["fixtures"]),
    ("limiquantix-qemu", "limiquantix-storage", &["fixtures"]),
    ("limiquantix-storage", "limiquantix-vm", &["fixtures"]),
    // The service's unit tests (ChangeMedia) start from `limiquantix_vm::model::fixtures`.
    ("limiquantix-node", "limiquantix-vm", &["fixtures"]),
];

/// Build-dependencies on workspace crates: (crate, dependency). None.
const BUILD: &[(&str, &str)] = &[];

/// What kind of dependency an edge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    Dev,
    Build,
}

/// A dependency of one workspace crate on another.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Edge {
    from: String,
    to: String,
    kind: Kind,
    /// Features the dependency enables, sorted.
    features: Vec<String>,
}

impl Edge {
    fn new(from: &str, to: &str, kind: Kind, features: &[&str]) -> Self {
        Edge {
            from: from.into(),
            to: to.into(),
            kind,
            features: sorted(features),
        }
    }
}

impl std::fmt::Display for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Normal => "normal",
            Kind::Dev => "dev",
            Kind::Build => "build",
        };
        write!(f, "{} -> {}", self.from, self.to)?;
        if !self.features.is_empty() {
            write!(f, "[{}]", self.features.join(", "))?;
        }
        write!(f, " ({kind} dependency)")
    }
}

/// Feature names, sorted.
fn sorted(features: &[&str]) -> Vec<String> {
    let mut features: Vec<String> = features.iter().map(|f| f.to_string()).collect();
    features.sort();
    features
}

/// Whether the tables allow `edge`.
fn allowed(edge: &Edge) -> bool {
    let normal = |from: &str, to: &str| {
        NORMAL
            .iter()
            .any(|(crate_, deps)| *crate_ == from && deps.contains(&to))
    };
    let plain = edge.features.is_empty();
    match edge.kind {
        Kind::Normal => plain && normal(&edge.from, &edge.to),
        Kind::Dev => {
            (plain && (normal(&edge.from, &edge.to) || edge.to == TEST_SUPPORT))
                || DEV_EXTRA.iter().any(|(from, to, features)| {
                    *from == edge.from && *to == edge.to && sorted(features) == edge.features
                })
        }
        Kind::Build => plain && BUILD.contains(&(edge.from.as_str(), edge.to.as_str())),
    }
}

/// What is wrong with the workspace `members` and their `edges`, one message a problem: an edge
/// the tables do not allow, a crate missing from the table, or a crate the table names that the
/// workspace no longer has. Empty when the graph is as the tables say.
fn check(members: &[String], edges: &[Edge]) -> Vec<String> {
    let mut problems = Vec::new();
    let table: BTreeSet<&str> = NORMAL.iter().map(|(c, _)| *c).collect();
    for member in members {
        if !table.contains(member.as_str()) {
            problems.push(format!(
                "crate {member} is not in the allowed-edges table: add it, with the workspace \
                 crates it may depend on, to NORMAL in {TABLE_FILE}"
            ));
        }
    }
    for crate_ in &table {
        if !members.iter().any(|m| m == crate_) {
            problems.push(format!(
                "the allowed-edges table names {crate_}, which is not a workspace crate: remove \
                 it from NORMAL in {TABLE_FILE}"
            ));
        }
    }
    for edge in edges.iter().filter(|e| !allowed(e)) {
        let table = match edge.kind {
            Kind::Normal => "NORMAL",
            Kind::Dev if edge.features.is_empty() => "NORMAL",
            Kind::Dev => "DEV_EXTRA",
            Kind::Build => "BUILD",
        };
        problems.push(format!(
            "unexpected dependency edge {edge}: remove it, or, if the crate graph is meant to \
             change, allow it in {table} in {TABLE_FILE} (and update ARCHITECTURE.md's crate \
             section)"
        ));
    }
    problems
}

/// The workspace members and the dependencies between them, from
/// `cargo metadata --format-version 1 --no-deps`.
fn workspace_graph() -> (Vec<String>, Vec<Edge>) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(workspace_root().join("Cargo.toml"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let members: Vec<String> = packages
        .iter()
        .map(|p| p["name"].as_str().expect("package name").to_owned())
        .collect();
    let mut edges = Vec::new();
    for package in packages {
        let from = package["name"].as_str().unwrap();
        for dep in package["dependencies"].as_array().expect("dependencies") {
            let to = dep["name"].as_str().expect("dependency name");
            if !members.iter().any(|m| m == to) {
                continue;
            }
            let kind = match dep["kind"].as_str() {
                None => Kind::Normal,
                Some("dev") => Kind::Dev,
                Some("build") => Kind::Build,
                Some(other) => panic!("{from} -> {to}: unknown dependency kind {other:?}"),
            };
            let features: Vec<&str> = dep["features"]
                .as_array()
                .expect("features")
                .iter()
                .map(|f| f.as_str().expect("feature name"))
                .collect();
            edges.push(Edge::new(from, to, kind, &features));
        }
    }
    (members, edges)
}

#[test]
fn every_dependency_between_workspace_crates_is_allowed() {
    let (members, edges) = workspace_graph();
    assert!(
        members.len() >= NORMAL.len() && !edges.is_empty(),
        "cargo metadata found {} crates and {} edges: {members:?}",
        members.len(),
        edges.len()
    );
    let problems = check(&members, &edges);
    assert!(
        problems.is_empty(),
        "the crate graph differs from its table:\n- {}",
        problems.join("\n- ")
    );
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_daemon_names_the_qemu_backend_in_main_rs_only() {
    let src = workspace_root().join("crates/limiquantix-node/src");
    let mut in_main = false;
    let mut elsewhere = Vec::new();
    for file in rust_files(&src) {
        let text = std::fs::read_to_string(&file).unwrap();
        let rel = file.strip_prefix(&src).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("limiquantix_qemu") {
                if rel == Path::new("main.rs") {
                    in_main = true;
                } else {
                    elsewhere.push(format!(
                        "crates/limiquantix-node/src/{}:{}: {}",
                        rel.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        in_main,
        "main.rs no longer chooses the QEMU backend: update this test"
    );
    assert!(
        elsewhere.is_empty(),
        "the daemon's library must speak to limiquantix-vm's VmBackend trait; only main.rs may \
         name limiquantix_qemu, but:\n{}",
        elsewhere.join("\n")
    );
}

/// The edges the tables allow, each once, as `cargo metadata` would list them.
fn allowed_edges() -> Vec<Edge> {
    let mut edges = Vec::new();
    for (from, deps) in NORMAL {
        for to in *deps {
            edges.push(Edge::new(from, to, Kind::Normal, &[]));
            edges.push(Edge::new(from, to, Kind::Dev, &[]));
        }
        if *from != TEST_SUPPORT {
            edges.push(Edge::new(from, TEST_SUPPORT, Kind::Dev, &[]));
        }
    }
    for (from, to, features) in DEV_EXTRA {
        edges.push(Edge::new(from, to, Kind::Dev, features));
    }
    for (from, to) in BUILD {
        edges.push(Edge::new(from, to, Kind::Build, &[]));
    }
    edges
}

fn table_members() -> Vec<String> {
    NORMAL.iter().map(|(c, _)| c.to_string()).collect()
}

#[test]
fn check_passes_every_edge_of_the_table() {
    assert_eq!(
        check(&table_members(), &allowed_edges()),
        Vec::<String>::new()
    );
}

#[test]
fn check_fails_on_an_added_edge_and_names_it_and_the_table() {
    let cases = [
        // The backend-neutral model must not know its backend.
        (
            Edge::new("limiquantix-vm", "limiquantix-qemu", Kind::Normal, &[]),
            "limiquantix-vm -> limiquantix-qemu (normal dependency)",
            "NORMAL",
        ),
        // The CLI talks to the daemon through the contract only, in its tests too.
        (
            Edge::new("lqctl", "limiquantix-node", Kind::Dev, &[]),
            "lqctl -> limiquantix-node (dev dependency)",
            "NORMAL",
        ),
        // Test data never reaches a normal build.
        (
            Edge::new(
                "limiquantix-node",
                "limiquantix-vm",
                Kind::Normal,
                &["fixtures"],
            ),
            "limiquantix-node -> limiquantix-vm[fixtures] (normal dependency)",
            "NORMAL",
        ),
        (
            Edge::new("lqctl", "limiquantix-cloudinit", Kind::Dev, &["fixtures"]),
            "lqctl -> limiquantix-cloudinit[fixtures] (dev dependency)",
            "DEV_EXTRA",
        ),
        // The test support is for tests only, and depends on nothing of the workspace.
        (
            Edge::new("limiquantix-node", TEST_SUPPORT, Kind::Normal, &[]),
            "limiquantix-node -> limiquantix-test-support (normal dependency)",
            "NORMAL",
        ),
        (
            Edge::new(TEST_SUPPORT, "limiquantix-node", Kind::Dev, &[]),
            "limiquantix-test-support -> limiquantix-node (dev dependency)",
            "NORMAL",
        ),
        (
            Edge::new("limiquantix-proto", "limiquantix-fs", Kind::Build, &[]),
            "limiquantix-proto -> limiquantix-fs (build dependency)",
            "BUILD",
        ),
    ];
    for (edge, named, table) in cases {
        let mut edges = allowed_edges();
        edges.push(edge.clone());
        let problems = check(&table_members(), &edges);
        assert_eq!(problems.len(), 1, "{edge}: {problems:?}");
        assert!(
            problems[0].contains(named)
                && problems[0].contains(&format!("{table} in {TABLE_FILE}")),
            "{edge}: {}",
            problems[0]
        );
    }
}

#[test]
fn check_fails_on_a_crate_missing_from_the_table_or_gone_from_the_workspace() {
    let mut members = table_members();
    members.push("limiquantix-new".into());
    let problems = check(&members, &allowed_edges());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("crate limiquantix-new is not in the allowed-edges table"));

    let members: Vec<String> = table_members()
        .into_iter()
        .filter(|m| m != "lqctl")
        .collect();
    let edges: Vec<Edge> = allowed_edges()
        .into_iter()
        .filter(|e| e.from != "lqctl")
        .collect();
    let problems = check(&members, &edges);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("names lqctl, which is not a workspace crate"));
}
