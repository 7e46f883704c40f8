//! Generates the prost messages and tonic client/server for `proto/sensei.proto`.
//! Needs `protoc` (Debian's protobuf-compiler); `.ci/run` installs it when missing.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/sensei.proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&["proto/sensei.proto"], &["proto"])?;
    Ok(())
}
