//! What of the host the sandbox can see or touch: processes, the caller's
//! environment, descriptors leaked by the caller, kernel files in /proc.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use libc::{EBADF, ENOENT, EROFS, ESRCH};

use super::harness::{assert_denied, attempt, report, Identity, Nucleus, TempDir, PROBE};

/// The descriptor number a careless caller leaks into nucleus.
const LEAKED_FD: i32 = 37;

as_root_and_user!(
    host_processes_cannot_be_signalled,
    host_processes_are_not_in_proc,
    callers_environment_is_not_in_proc_1_environ,
    unshare_binary_fails,
    proc_sys_is_read_only,
    sensitive_proc_files_are_masked,
    leaked_fd_really_reaches_nucleus,
    leaked_fd_is_closed_in_the_sandbox,
    leaked_fd_cannot_be_read,
);

fn test_pid() -> String {
    let pid = std::process::id();
    // PID 1 is the probe itself inside: a test process with pid 1 would
    // prove nothing.
    assert!(pid > 1);
    pid.to_string()
}

fn host_processes_cannot_be_signalled(id: &Identity) {
    assert_denied(id, &[], &["kill", &test_pid(), "0"], ESRCH);
}

fn host_processes_are_not_in_proc(id: &Identity) {
    assert_denied(
        id,
        &[],
        &["exists", &format!("/proc/{}", test_pid())],
        ENOENT,
    );
}

fn callers_environment_is_not_in_proc_1_environ(id: &Identity) {
    let marker = format!("nucleus-it-marker-{}", std::process::id());
    let out = Nucleus::new(id).env("NUCLEUS_IT_MARKER", &marker).probe(&[
        "try",
        "read",
        "/proc/1/environ",
    ]);
    out.assert_code(0);
    let v = out.json();
    let environ = v["detail"].as_str().unwrap_or_default();
    assert_eq!(v["ok"], true, "{out}");
    assert!(environ.starts_with("HOME=/tmp\0PATH="), "{environ:?}");
    assert!(
        !environ.contains(&marker),
        "caller's variable leaked: {environ:?}"
    );
    assert!(!environ.contains("NUCLEUS_IT_MARKER"), "{environ:?}");
}

/// The real util-linux binary, not just the probe's raw syscall.
fn unshare_binary_fails(id: &Identity) {
    let out = Nucleus::new(id).run(&["unshare", "-U", "true"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("unshare failed: Operation not permitted"),
        "{out}"
    );
}

fn proc_sys_is_read_only(id: &Identity) {
    assert_denied(id, &[], &["write", "/proc/sys/kernel/hostname"], EROFS);
}

fn sensitive_proc_files_are_masked(id: &Identity) {
    let r = report(id, &[]);
    let mounted = |t: &str| {
        r["mounts"]
            .as_array()
            .is_some_and(|m| m.iter().any(|e| e["target"] == t))
    };
    for file in ["/proc/keys", "/proc/timer_list"] {
        assert!(mounted(file), "{file} is not masked: {}", r["mounts"]);
        let a = attempt(id, &[], &["read", file]);
        assert_eq!((a.ok, a.detail.as_str()), (true, ""), "{file}: {a:?}");
    }
    let kcore = attempt(id, &[], &["read", "/proc/kcore"]);
    if Path::new("/proc/kcore").exists() {
        assert_eq!((kcore.ok, kcore.detail.as_str()), (true, ""), "{kcore:?}");
    } else {
        // This kernel has no kcore at all.
        assert_eq!(kcore.errno, Some(ENOENT), "{kcore:?}");
    }
}

/// A file the test opens and leaks; mode 0600, so only the leak could
/// give the user access.
fn secret_file(dir: &TempDir) -> std::path::PathBuf {
    let file = dir.write("secret", "host secret\n");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    file
}

/// Precondition of the two tests below: the leak mechanism works.
fn leaked_fd_really_reaches_nucleus(id: &Identity) {
    let dir = TempDir::new("leak");
    let secret = secret_file(&dir);
    let mut run = Nucleus::new(id)
        .leak_fd(&secret, LEAKED_FD)
        .spawn(&[PROBE, "wait-signal"]);
    assert_eq!(run.line(), "ready");
    let held = fs::read_link(format!("/proc/{}/fd/{LEAKED_FD}", run.pid()));
    run.signal(libc::SIGTERM);
    run.finish().assert_code(0);
    let held = held.unwrap_or_else(|e| {
        panic!("fd {LEAKED_FD} never reached nucleus ({e}): the leak tests would prove nothing")
    });
    assert_eq!(held, secret);
}

fn leaked_fd_is_closed_in_the_sandbox(id: &Identity) {
    let dir = TempDir::new("leak");
    let out = Nucleus::new(id)
        .leak_fd(&secret_file(&dir), LEAKED_FD)
        .args(["-w", "/tmp"])
        .probe(&["report"]);
    out.assert_code(0);
    let r = out.json();
    assert_eq!(r["open_fds"], serde_json::json!([0, 1, 2]));
    assert_eq!(r["cwd"], "/tmp");
}

fn leaked_fd_cannot_be_read(id: &Identity) {
    let dir = TempDir::new("leak");
    let secret = secret_file(&dir);
    let fd = LEAKED_FD.to_string();
    let leaked = |args: &[&str]| {
        let mut probe = vec!["try"];
        probe.extend_from_slice(args);
        let out = Nucleus::new(id)
            .leak_fd(&secret, LEAKED_FD)
            .args(["-w", "/tmp"])
            .probe(&probe);
        out.assert_code(0);
        out.json()
    };
    let read = leaked(&["fd-read", &fd]);
    assert_eq!(
        (&read["ok"], &read["errno"]),
        (&false.into(), &EBADF.into()),
        "{read}"
    );
    // The working directory is the -w directory, reachable from the root.
    let cwd = leaked(&["cwd"]);
    assert_eq!(
        (&cwd["ok"], &cwd["detail"]),
        (&true.into(), &"/tmp".into()),
        "{cwd}"
    );
}
