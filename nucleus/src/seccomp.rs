//! Seccomp programs for the plan. The default profile
//! (`config/seccomp-default.json`) is compiled by the build script with
//! libseccomp and embedded as BPF, so the shipped file and the built-in
//! default cannot drift apart and starting a sandbox compiles nothing. A
//! profile given with `--seccomp-profile` is compiled here, at run time,
//! by the same code.

use anyhow::{Context, Result};
use protocol::{SeccompProgram, SockFilter};

use crate::policy::Source;
use crate::seccomp_oci::{self, Profile};

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

/// Parses an OCI seccomp profile (errors with positions) and compiles it.
pub fn compile_profile(src: &Source) -> Result<SeccompProgram> {
    let profile: Profile = src.parse_json()?;
    let bpf = seccomp_oci::compile(&profile).with_context(|| src.name.clone())?;
    program_from_bpf(&bpf).with_context(|| src.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp_oci::compile_to_bpf;

    fn profile(text: &str) -> Result<SeccompProgram> {
        compile_profile(&Source {
            name: "--seccomp-profile p.json".into(),
            text: text.into(),
        })
    }

    fn err(text: &str) -> String {
        format!("{:#}", profile(text).unwrap_err())
    }

    #[test]
    fn embedded_program_is_the_shipped_profile() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/seccomp-default.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(compile_to_bpf(&text).unwrap(), DEFAULT_BPF);
        // Compiled at run time, the shipped file is the default program.
        let src = Source {
            name: "config/seccomp-default.json".into(),
            text,
        };
        assert_eq!(compile_profile(&src).unwrap(), default_program().unwrap());
        assert!(default_program().unwrap().instructions().len() > 100);
    }

    #[test]
    fn the_example_compiles() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/seccomp-example.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        assert!(profile(&text).is_ok());
    }

    #[test]
    fn bad_names_are_placed_and_named() {
        let e = err("{\n  \"defaultAction\": \"SCMP_ACT_NOPE\"\n}");
        assert!(
            e.starts_with(
                "--seccomp-profile p.json:2:34: defaultAction: unknown variant `SCMP_ACT_NOPE`"
            ),
            "{e}"
        );
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"BAD"}]}]}"#,
        );
        assert!(
            e.starts_with(
                "--seccomp-profile p.json:1:129: syscalls[0].args[0].op: unknown variant `BAD`"
            ),
            "{e}"
        );
        let e = err(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_PDP11"]}"#);
        assert!(
            e.contains(": architectures[0]: unknown variant `SCMP_ARCH_PDP11`"),
            "{e}"
        );
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        assert!(
            e.contains(": syscalls[0].args[0].index: argument index 6 is out of range"),
            "{e}"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = err(r#"{"defaultAction":"SCMP_ACT_ALLOW","bogus":1}"#);
        assert!(
            e.starts_with("--seccomp-profile p.json:1:41: bogus: unknown field `bogus`"),
            "{e}"
        );
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[],"action":"SCMP_ACT_ALLOW","nme":1}]}"#,
        );
        assert!(e.contains(": syscalls[0].nme: unknown field `nme`"), "{e}");
    }

    #[test]
    fn wrong_types_are_named() {
        let e = err("{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n \"defaultErrnoRet\": \"EPERM\"}");
        assert!(
            e.starts_with("--seccomp-profile p.json:2:27: defaultErrnoRet: invalid type: string"),
            "{e}"
        );
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":"read","action":"SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(
            e.contains(": syscalls[0].names: invalid type: string \"read\", expected a sequence"),
            "{e}"
        );
        let e = err(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":0}"#);
        assert!(
            e.contains(": defaultErrnoRet: errno 0 is out of range"),
            "{e}"
        );
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":70000}]}"#,
        );
        assert!(
            e.contains(": syscalls[0].errnoRet: errno 70000 is out of range"),
            "{e}"
        );
        let e = err(r#"{"syscalls":[]}"#);
        assert!(e.contains("missing field `defaultAction`"), "{e}");
        let e = err(r#"{"defaultAction":"SCMP_ACT_ALLOW"} x"#);
        assert!(e.contains("trailing"), "{e}");
    }

    #[test]
    fn unknown_syscall_names_are_skipped() {
        let p = profile(
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
