//! Compiles every `.proto` file under `<workspace>/proto` with `protox` (pure
//! Rust: no system `protoc`), writes the encoded descriptor set to
//! `$OUT_DIR/coldchain_descriptor.bin` (served by gRPC reflection), and
//! generates the prost messages and tonic clients/servers from it.

use std::{
    env,
    error::Error,
    fs,
    path::{Path, PathBuf},
};

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    // Canonical, so protox can tell the files lie under the include path.
    let proto_root = manifest_dir.join("../../proto").canonicalize()?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    // Rebuild when anything under proto/ changes (a directory entry makes
    // cargo watch files added or removed, as well as every file listed).
    println!("cargo:rerun-if-changed={}", proto_root.display());
    let mut protos = Vec::new();
    collect_protos(&proto_root, &mut protos)?;
    protos.sort();
    if protos.is_empty() {
        return Err(format!("no .proto files under {}", proto_root.display()).into());
    }
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }

    // Source info keeps the comments (for rustdoc and reflection); imports
    // keep google/protobuf/*.proto in the set so reflection clients can
    // resolve every dependency from this server alone.
    let mut compiler = protox::Compiler::new([&proto_root])?;
    compiler
        .include_source_info(true)
        .include_imports(true)
        .open_files(&protos)?;
    fs::write(
        out_dir.join("coldchain_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    // The well-known types are not generated: prost-build maps
    // google.protobuf.* to prost-types (Timestamp -> prost_types::Timestamp).
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .compile_fds(compiler.file_descriptor_set())?;

    Ok(())
}

/// Appends every `.proto` file under `dir`, recursively.
fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Box<dyn Error>> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
