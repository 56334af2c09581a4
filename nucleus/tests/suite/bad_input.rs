//! Bad input: exit 125 and one line on stderr naming the flag to fix.
//! Every run also checks (in the harness) that nothing was left behind:
//! the test process's mount table is unchanged and no child survives.

use super::harness::{Identity, Nucleus, TempDir};

/// `nucleus run FLAGS -- true` fails with 125 and one `nucleus: ` line
/// naming `flag`; the command never runs.
pub(super) fn refused(flags: &[&str], flag: &str) -> String {
    let out = Nucleus::bare(&Identity::invoker())
        .args(flags)
        .run(&["true"]);
    out.assert_refused(flag).to_owned()
}

#[test]
fn unknown_flag() {
    refused(&["--bogus"], "--bogus");
}

#[test]
fn missing_rootfs() {
    refused(&["--rootfs", "/nonexistent"], "--rootfs /nonexistent");
}

#[test]
fn missing_volume_source() {
    refused(&["-v", "/nonexistent:/x"], "--volume /nonexistent:/x");
}

#[test]
fn relative_volume_target() {
    refused(&["-v", "/tmp:relative"], "--volume /tmp:relative");
}

#[test]
fn env_file_line_without_equals() {
    let dir = TempDir::new("bad-env-file");
    let file = dir.write("vars", "A=1\nNOEQUALS\n");
    let flags = ["--env-file", file.to_str().unwrap()];
    let line = refused(&flags, "--env-file");
    assert!(line.contains("line 2"), "{line}");
}

#[test]
fn unset_env_key() {
    refused(
        &["-e", "NUCLEUS_IT_SURELY_UNSET"],
        "--env NUCLEUS_IT_SURELY_UNSET",
    );
}

#[test]
fn relative_workdir() {
    refused(&["-w", "relative/dir"], "--workdir relative/dir");
}

#[test]
fn zero_timeout() {
    refused(&["--timeout", "0"], "--timeout 0");
}

#[test]
fn unknown_userns_mode() {
    refused(&["--userns", "bogus"], "--userns bogus");
}
