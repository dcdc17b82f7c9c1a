//! What checking one document against cloud-init's schema costs a fresh process: reading and
//! parsing the schema file, compiling, checking. The whole schema against only the sub-schemas
//! of the document's top-level keys, side by side; prints the medians and the ratio.
//!
//! Run with `cargo bench -p limiquantix-cloudinit --bench schema` (needs cloud-init's schema).

use std::time::{Duration, Instant};

use limiquantix_cloudinit::DefaultUserData;
use limiquantix_cloudinit::validate::schema::{Schema, locate_schema};
use limiquantix_cloudinit::yaml11;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("schema bench: run with `cargo bench` to measure");
        return;
    }
    let Some(path) = locate_schema() else {
        println!("schema bench: cloud-init's schema is not installed; skipped");
        return;
    };
    let default = DefaultUserData::new("web1")
        .ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG8x user@host")
        .to_yaml()
        .expect("user-data");
    let docs = [
        ("two-line #cloud-config", "hostname: web1\n".to_owned()),
        (
            "default user-data",
            String::from_utf8(default).expect("utf-8"),
        ),
    ];
    for (name, text) in docs {
        let doc = yaml11::load(&text).expect("yaml");
        let run = |full: bool| {
            median(100, || {
                let text = std::fs::read_to_string(&path).expect("schema");
                let schema = Schema::from_text(text).expect("schema");
                let report = if full {
                    schema.check_full(&doc)
                } else {
                    schema.check(&doc)
                };
                assert!(report.expect("check").errors.is_empty());
            })
        };
        let (whole, reduced) = (run(true), run(false));
        println!(
            "{name}: whole schema {:.2} ms, reduced {:.2} ms, ratio {:.1}x",
            ms(whole),
            ms(reduced),
            whole.as_secs_f64() / reduced.as_secs_f64()
        );
    }
}

fn median(n: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[n / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
