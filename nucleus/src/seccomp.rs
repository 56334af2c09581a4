//! Seccomp programs for the plan. The default profile
//! (`config/seccomp-default.json`) is compiled by the build script with
//! libseccomp and embedded as BPF, so the shipped file and the built-in
//! default cannot drift apart and starting a sandbox compiles nothing.

use anyhow::{Context, Result};
use protocol::{SeccompProgram, SockFilter};

const DEFAULT_BPF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/seccomp-default.bpf"));

/// Decodes raw `struct sock_filter` bytes (native endianness).
pub fn program_from_bpf(bytes: &[u8]) -> Result<SeccompProgram> {
    if !bytes.len().is_multiple_of(8) {
        anyhow::bail!("BPF program length {} is not a multiple of 8", bytes.len());
    }
    let insns = bytes
        .chunks_exact(8)
        .map(|c| SockFilter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect::<Vec<_>>();
    SeccompProgram::try_from(insns).context("seccomp program")
}

pub fn default_program() -> Result<SeccompProgram> {
    program_from_bpf(DEFAULT_BPF).context("built-in seccomp profile")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp_oci::compile_to_bpf;

    const DEFAULT_PROFILE: &str = include_str!("../../config/seccomp-default.json");

    #[test]
    fn embedded_program_is_the_shipped_profile() {
        assert_eq!(compile_to_bpf(DEFAULT_PROFILE).unwrap(), DEFAULT_BPF);
        assert!(default_program().unwrap().instructions().len() > 100);
    }

    #[test]
    fn bad_profiles_name_the_field() {
        let err = compile_to_bpf(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#).unwrap_err();
        assert!(format!("{err:#}").contains("defaultAction"), "{err:#}");
        let err = compile_to_bpf(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"BAD"}]}]}"#).unwrap_err();
        assert!(format!("{err:#}").contains("syscalls[0].args"), "{err:#}");
        assert!(compile_to_bpf(r#"{"defaultAction":"SCMP_ACT_ALLOW","bogus":1}"#).is_err());
    }

    #[test]
    fn unknown_syscall_names_are_skipped() {
        let p = compile_to_bpf(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","no_such_call"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(p.is_ok());
    }

    #[test]
    fn odd_lengths_are_refused() {
        assert!(program_from_bpf(&[0; 7]).is_err());
        assert!(program_from_bpf(&[]).is_err());
    }
}
