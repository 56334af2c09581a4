//! Compiles the default seccomp profile to BPF at build time.

#[path = "src/seccomp_oci.rs"]
mod seccomp_oci;

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let profile = "../config/seccomp-default.json";
    println!("cargo:rerun-if-changed={profile}");
    println!("cargo:rerun-if-changed=src/seccomp_oci.rs");
    let json = std::fs::read_to_string(profile)?;
    let bpf = seccomp_oci::compile_to_bpf(&json)?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("seccomp-default.bpf");
    std::fs::write(out, bpf)?;
    Ok(())
}
