//! Compiles `baton/v1/*.proto` with protox, so no `protoc` is needed on the machine.
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["baton/v1/bus.proto", "baton/v1/admin.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["."])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // Server reflection serves this set, so grpcurl works with no .proto at hand.
    std::fs::write(out.join("baton_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
