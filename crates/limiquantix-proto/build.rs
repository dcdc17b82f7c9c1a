//! Compiles every `.proto` of `proto/limiquantix/node/v1/` with `protox` (a pure-Rust protobuf
//! compiler, so no system `protoc` is needed), generates the prost messages and the tonic clients
//! and servers, and writes the encoded file descriptor set used by gRPC server reflection.

use prost::Message as _;
use std::path::PathBuf;

const PROTO_DIR: &str = "proto/limiquantix/node/v1";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let mut protos: Vec<PathBuf> = std::fs::read_dir(PROTO_DIR)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    protos.retain(|p| p.extension().is_some_and(|e| e == "proto"));
    protos.sort();

    let fds = protox::compile(&protos, ["proto"])?;
    std::fs::write(
        out_dir.join("limiquantix_node_v1_descriptor.bin"),
        fds.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        // Ordered maps encode deterministically, so a request's bytes can be digested.
        .btree_map(".")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
