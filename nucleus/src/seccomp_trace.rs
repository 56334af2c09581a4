//! Trace mode's two ends in the front end: `--seccomp-mode trace
//! --seccomp-log FILE` opens the record (the executor fills it), and
//! `nucleus seccomp generate` turns records into the minimal OCI profile
//! that allows exactly the system calls they saw, sorted and stable.

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use libseccomp::{ScmpArch, ScmpSyscall};

use crate::cli::RunSpec;

/// The record's file, opened as the caller (created or truncated, 0600).
pub fn trace_file(spec: &RunSpec) -> Result<Option<OwnedFd>> {
    match (spec.seccomp_mode_trace, &spec.seccomp_trace) {
        (false, None) => Ok(None),
        (false, Some(_)) => bail!("--seccomp-log: records --seccomp-mode trace; add it"),
        (true, None) => {
            bail!("--seccomp-mode trace: --seccomp-log FILE says where the record goes")
        }
        (true, Some(path)) => crate::compile::output_file("--seccomp-log", path).map(Some),
    }
}

/// The profile allowing every system call of `traces`; anything else
/// fails with ENOSYS, as with the default profile.
pub fn generate(traces: &[PathBuf]) -> Result<String> {
    let mut names = BTreeSet::new();
    for path in traces {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let at = || format!("{}:{}", path.display(), i + 1);
            let record: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("{}: not JSON", at()))?;
            if record["arch"] != "x86_64" {
                bail!(
                    "{}: arch {}: only x86_64 traces are supported",
                    at(),
                    record["arch"]
                );
            }
            let nr = record["nr"]
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| anyhow!("{}: nr: expected a system call number", at()))?;
            let name = ScmpSyscall::from(nr)
                .get_name_by_arch(ScmpArch::X8664)
                .map_err(|e| anyhow!("{}: system call {nr}: {e}", at()))?;
            names.insert(name);
        }
    }
    Ok(profile(&names))
}

fn profile(names: &BTreeSet<String>) -> String {
    let list = names
        .iter()
        .map(|n| format!("        \"{n}\""))
        .collect::<Vec<_>>()
        .join(",\n");
    format!(
        "{{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"defaultErrnoRet\": 38,\n  \"architectures\": [\"SCMP_ARCH_X86_64\"],\n  \"syscalls\": [\n    {{\n      \"names\": [\n{list}\n      ],\n      \"action\": \"SCMP_ACT_ALLOW\"\n    }}\n  ]\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executors_syscall_names_are_libseccomps() {
        // The executor names denied calls from its own table (it links no
        // libseccomp): every entry, and every number libseccomp names,
        // must agree.
        let table = sandbox::syscalls::X86_64;
        for &(nr, name) in table {
            let theirs = ScmpSyscall::from(nr).get_name_by_arch(ScmpArch::X8664);
            assert_eq!(theirs.ok().as_deref(), Some(name), "{nr}");
        }
        for nr in 0..1024 {
            if let Ok(theirs) = ScmpSyscall::from(nr).get_name_by_arch(ScmpArch::X8664) {
                assert_eq!(sandbox::syscalls::name(nr), Some(theirs.as_str()), "{nr}");
            }
        }
    }

    #[test]
    fn traces_become_a_sorted_allowlist() {
        let dir = std::env::temp_dir().join(format!("nucleus-gen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.ndjson"), dir.join("b.ndjson"));
        std::fs::write(&a, "{\"arch\":\"x86_64\",\"nr\":59,\"count\":1}\n{\"arch\":\"x86_64\",\"nr\":0,\"count\":3}\n").unwrap();
        std::fs::write(&b, "{\"arch\":\"x86_64\",\"nr\":0,\"count\":1}\n{\"arch\":\"x86_64\",\"nr\":1,\"count\":2}\n").unwrap();
        let text = generate(&[a.clone(), b.clone()]).unwrap();
        assert!(
            text.contains(
                "\"names\": [\n        \"execve\",\n        \"read\",\n        \"write\"\n      ]"
            ),
            "{text}"
        );
        assert_eq!(
            text,
            generate(&[b, a]).unwrap(),
            "order of traces does not matter"
        );
        let bad = dir.join("bad.ndjson");
        std::fs::write(&bad, "{\"arch\":\"x86_64\",\"nr\":\"x\"}\n").unwrap();
        let err = format!("{:#}", generate(&[bad]).unwrap_err());
        assert!(err.contains("bad.ndjson:1: nr"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
