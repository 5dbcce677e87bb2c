//! Compile `proto/gpunet/v1/{dispatch,peer}.proto` with protox (pure Rust, no system `protoc`) and generate
//! tonic code through tonic-prost-build. The encoded descriptor set is also written to OUT_DIR for
//! gRPC reflection.
use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/gpunet/v1/dispatch.proto",
        "proto/gpunet/v1/peer.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out.join("gpunet_v1_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .bytes(".")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
