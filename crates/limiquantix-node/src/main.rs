//! The `limiquantix-node` daemon.

fn main() {}
