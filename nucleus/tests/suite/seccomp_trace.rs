//! Trace mode: record a real program's system calls, generate a profile,
//! and enforce it; without one needed call the program fails.

use super::harness::{give, helper_output, Identity, Nucleus, TempDir};

as_root_and_user!(trace_generate_enforce_round_trip);

fn trace_generate_enforce_round_trip(id: &Identity) {
    let dir = TempDir::new("seccomp-trace");
    give(dir.path(), id);
    let (trace, profile) = (dir.join("ls.ndjson"), dir.join("ls.json"));
    let ls = ["ls", "-l", "/usr"];
    Nucleus::new(id)
        .args(["--seccomp-mode", "trace", "--seccomp-log"])
        .arg(&trace)
        .run(&ls)
        .assert_code(0);
    let record = std::fs::read_to_string(&trace).unwrap();
    assert!(
        record.contains("\"nr\":59,"),
        "execve is recorded: {record}"
    );
    let mut generate = std::process::Command::new(env!("CARGO_BIN_EXE_nucleus"));
    generate
        .args(["seccomp", "generate"])
        .arg(&trace)
        .arg("-o")
        .arg(&profile);
    let generated = helper_output(generate);
    assert!(generated.status.success(), "{generated:?}");
    let text = std::fs::read_to_string(&profile).unwrap();
    assert!(text.contains("\"getdents64\""), "{text}");
    Nucleus::new(id)
        .arg("--seccomp-profile")
        .arg(&profile)
        .run(&ls)
        .assert_code(0);
    // One call the program needs, taken out: it fails.
    let without = dir.join("without.json");
    std::fs::write(&without, text.replace("        \"getdents64\",\n", "")).unwrap();
    give(&without, id);
    let out = Nucleus::new(id)
        .arg("--seccomp-profile")
        .arg(&without)
        .run(&ls);
    assert_ne!(out.code(), Some(0), "ls without getdents64 fails\n{out}");
}

#[test]
fn trace_mode_is_for_agent_mode_in_process() {
    let id = Identity::invoker();
    Nucleus::bare(&id)
        .args(["--seccomp-mode", "trace"])
        .run(&["true"])
        .assert_refused("--seccomp-log FILE");
    Nucleus::bare(&id)
        .args([
            "--seccomp-mode",
            "trace",
            "--seccomp-log",
            "/dev/null",
            "--service-mode",
            "strict-agent",
        ])
        .run(&["true"])
        .assert_refused("agent mode only");
}
