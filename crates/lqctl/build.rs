//! Link options of the `lqctl` binary: its relative relocations packed (`DT_RELR`), so that the
//! dynamic loader reads a few kilobytes instead of a 650 KB table at every start (`lqctl seed`
//! is judged as a whole process; see BENCHMARKS.md). Linkers and C libraries without `DT_RELR`
//! ignore the option (GNU ld before 2.38 warns; glibc needs 2.36).

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux-gnu") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
