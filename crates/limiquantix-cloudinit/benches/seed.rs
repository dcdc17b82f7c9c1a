//! Seed generation benchmark (filled in below).

fn main() {}
