//! Process semantics: exit codes, the timeout, signal forwarding and the
//! sandbox's death with nucleus.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use super::harness::sys;
use super::harness::{children_of, cmdline, dies_within, Identity, Nucleus, DEADLINE, PROBE};

/// A generous bound: the point is that it happens, not how fast.
const PROMPTLY: Duration = Duration::from_secs(10);

as_root_and_user!(
    sandbox_dies_with_a_killed_nucleus,
    timeout_kills_the_sandbox_with_124,
);

#[test]
fn exit_code_passes_through() {
    let id = Identity::invoker();
    for code in [0, 3, 42] {
        Nucleus::new(&id)
            .probe(&["exit", &code.to_string()])
            .assert_code(code);
    }
}

#[test]
fn missing_command_is_127() {
    let out = Nucleus::new(&Identity::invoker()).run(&["/no/such/program"]);
    out.assert_code(127);
    assert!(out.stderr_line().starts_with("nucleus: "), "{out}");
    let out = Nucleus::new(&Identity::invoker()).run(&["no-such-program-on-path"]);
    out.assert_code(127);
}

#[test]
fn non_executable_file_is_126() {
    let out = Nucleus::new(&Identity::invoker()).run(&["/etc/passwd"]);
    out.assert_code(126);
    assert!(out.stderr_line().starts_with("nucleus: "), "{out}");
}

fn timeout_kills_the_sandbox_with_124(id: &Identity) {
    let out = Nucleus::new(id)
        .args(["--timeout", "1"])
        .probe(&["sleep", "30"]);
    out.assert_code(124);
    assert!(out.elapsed < PROMPTLY, "took {:?}\n{out}", out.elapsed);
    assert!(out.stderr_line().starts_with("nucleus: timeout"), "{out}");
}

/// One forwarded signal reaches the workload's handler; the workload
/// reports it and exits 0, and so does nucleus.
fn forwarded(sig: i32) {
    let mut run = Nucleus::new(&Identity::invoker()).spawn(&[PROBE, "wait-signal"]);
    assert_eq!(run.line(), "ready");
    run.signal(sig);
    let out = run.finish();
    out.assert_code(0);
    assert_eq!(out.json(), serde_json::json!({ "signal": sig }), "{out}");
}

#[test]
fn sigterm_is_forwarded() {
    forwarded(libc::SIGTERM);
}

#[test]
fn sigint_is_forwarded() {
    forwarded(libc::SIGINT);
}

#[test]
fn sighup_is_forwarded() {
    forwarded(libc::SIGHUP);
}

/// Standard signals do not queue: a second SIGTERM sent before nucleus
/// read the first would merge with it. No event says "read", so this polls
/// nucleus's pending sets.
fn wait_until_taken(pid: i32, sig: i32) {
    let bit = 1u64 << (sig - 1);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let pending = status
            .lines()
            .filter_map(|l| l.strip_prefix("SigPnd:").or(l.strip_prefix("ShdPnd:")))
            .filter_map(|v| u64::from_str_radix(v.trim(), 16).ok())
            .fold(0, |a, b| a | b);
        if pending & bit == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "nucleus never took signal {sig}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The workload is PID 1 and ignores SIGTERM (no handler); the second
/// SIGTERM becomes SIGKILL: 128 + 9.
#[test]
fn second_sigterm_kills_with_137() {
    let script = format!("echo ready; exec {PROBE} sleep 60");
    let mut run = Nucleus::new(&Identity::invoker()).spawn(&["sh", "-c", &script]);
    assert_eq!(run.line(), "ready");
    run.signal(libc::SIGTERM);
    wait_until_taken(run.pid(), libc::SIGTERM);
    assert!(
        run.is_running(),
        "one SIGTERM stopped a PID 1 without a handler"
    );
    run.signal(libc::SIGTERM);
    let out = run.finish();
    out.assert_code(137);
    assert!(out.elapsed < DEADLINE);
}

/// SIGKILL gives nucleus no chance to clean up: the kernel (parent-death
/// signal) must take the sandbox down anyway.
fn sandbox_dies_with_a_killed_nucleus(id: &Identity) {
    let mut run = Nucleus::new(id).spawn(&[PROBE, "wait-signal"]);
    assert_eq!(run.line(), "ready");
    let nucleus = u32::try_from(run.pid()).unwrap();
    let children = children_of(nucleus);
    assert_eq!(children.len(), 1, "nucleus's children: {children:?}");
    let sandbox = children[0];
    let probe_cmdline = format!("{PROBE} wait-signal ");
    assert_eq!(cmdline(sandbox), probe_cmdline);
    let sandbox_fd = sys::pidfd_open(sandbox).unwrap();

    run.signal(libc::SIGKILL);
    let died = sys::readable_within(sandbox_fd.as_fd(), PROMPTLY).unwrap();
    // Reparented to us (a subreaper) when nucleus died: reap it, or kill
    // it if it survived, before asserting.
    if !dies_within(sandbox, Duration::ZERO) {
        let _ = sys::kill(sandbox, libc::SIGKILL);
    }
    assert!(died, "the sandbox (host pid {sandbox}) outlived nucleus");
    let out = run.finish();
    assert_eq!(out.signal(), Some(libc::SIGKILL), "{out}");
    // Gone, or the pid already reused by something else.
    assert_ne!(
        cmdline(sandbox),
        probe_cmdline,
        "pid {sandbox} still runs the probe"
    );
}
