//! Service modes at the command line, the mini-init and the kernel
//! lockdown requirement.

use super::harness::{helper_output, Identity, Nucleus, Who};

/// A workload that leaves an orphan behind and never waits for it, then
/// counts the zombies it can see.
const ORPHAN_AND_COUNT_ZOMBIES: &str = "\
import glob, os, time
if os.fork() == 0:
    if os.fork() == 0:
        os._exit(0)
    os._exit(0)
os.wait()
time.sleep(0.5)
zombies = 0
for stat in glob.glob('/proc/[0-9]*/stat'):
    try:
        if open(stat).read().rsplit(')', 1)[1].split()[0] == 'Z':
            zombies += 1
    except OSError:
        pass
print(zombies)
";

#[test]
fn the_init_reaps_orphans_a_workload_as_pid_1_does_not() {
    let id = Identity::invoker();
    let without = Nucleus::new(&id).run(&["python3", "-c", ORPHAN_AND_COUNT_ZOMBIES]);
    without.assert_code(0);
    assert_eq!(
        without.stdout.trim(),
        "1",
        "python as PID 1 keeps the zombie\n{without}"
    );
    let with = Nucleus::new(&id)
        .arg("--init")
        .run(&["python3", "-c", ORPHAN_AND_COUNT_ZOMBIES]);
    with.assert_code(0);
    assert_eq!(with.stdout.trim(), "0", "the init reaped it\n{with}");
}

#[test]
fn the_init_forwards_sigterm_and_exits_with_the_workloads_status() {
    let id = Identity::invoker();
    let handler = "import signal, sys, time\n\
                   signal.signal(signal.SIGTERM, lambda *a: sys.exit(42))\n\
                   print('ready', flush=True)\n\
                   time.sleep(30)";
    let mut run = Nucleus::new(&id)
        .arg("--init")
        .spawn(&["python3", "-c", handler]);
    assert_eq!(run.line(), "ready");
    run.signal(libc::SIGTERM);
    run.finish().assert_code(42);
    // A workload without a handler dies of it: 128 + 15, as a shell says.
    let mut run = Nucleus::new(&id)
        .arg("--init")
        .spawn(&["sh", "-c", "echo ready; exec sleep 30"]);
    assert_eq!(run.line(), "ready");
    run.signal(libc::SIGTERM);
    run.finish().assert_code(128 + libc::SIGTERM);
}

#[test]
fn the_init_passes_exec_failures_on() {
    let out = Nucleus::new(&Identity::invoker())
        .arg("--init")
        .run(&["/no/such/program"]);
    out.assert_code(127);
}

#[test]
fn modes_refuse_what_they_forbid() {
    let id = Identity::invoker();
    let out = Nucleus::bare(&id)
        .args(["--service-mode", "production"])
        .run(&["true"]);
    let line = out.assert_refused("production mode forbids");
    assert!(
        line.contains("--memory") && line.contains("--rootfs"),
        "{line}"
    );
    let out = Nucleus::bare(&id)
        .args(["--service-mode", "strict-agent", "--network", "bridge"])
        .run(&["true"]);
    assert!(out
        .assert_refused("strict-agent mode forbids")
        .contains("--dns"));
    let out = Nucleus::bare(&id)
        .args(["--service-mode", "bogus"])
        .run(&["true"]);
    out.assert_refused("--service-mode bogus");
}

#[test]
fn strict_agent_as_root_needs_remapped_ids() {
    let Some(root) = Who::Root.resolve() else {
        return;
    };
    let out = Nucleus::bare(&root)
        .args(["--service-mode", "strict-agent"])
        .run(&["true"]);
    out.assert_refused("maps no id to the host's root");
}

/// The level this kernel is locked down to, read as root through a
/// private securityfs mount; None where there is no lockdown support.
fn kernel_lockdown() -> Option<String> {
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t securityfs -o ro securityfs /sys/kernel/security 2>/dev/null; cat /sys/kernel/security/lockdown");
    let out = helper_output(cmd);
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
        .map(str::to_owned)
}

#[test]
fn kernel_lockdown_is_required_as_asked() {
    let Some(root) = Who::Root.resolve() else {
        return;
    };
    let Some(level) = kernel_lockdown() else {
        eprintln!("SKIPPED: this kernel has no lockdown support");
        assert!(std::env::var_os("NUCLEUS_REQUIRE_ALL").is_none());
        return;
    };
    let run = |want: &str| {
        Nucleus::bare(&root)
            .args(["--require-kernel-lockdown", want])
            .run(&["true"])
    };
    let rank = |l: &str| {
        ["none", "integrity", "confidentiality"]
            .iter()
            .position(|x| *x == l)
    };
    for want in ["integrity", "confidentiality"] {
        let out = run(want);
        if rank(&level) >= rank(want) {
            out.assert_code(0);
        } else {
            let line = out.assert_refused(&format!("--require-kernel-lockdown {want}"));
            assert!(
                line.contains(&format!("the kernel's lockdown is {level}")),
                "{line}"
            );
        }
    }
    Nucleus::bare(&root)
        .args(["--require-kernel-lockdown", "bogus"])
        .run(&["true"])
        .assert_refused("--require-kernel-lockdown bogus");
}

#[test]
fn untrusted_workloads_need_gvisor_or_the_degraded_flag() {
    let id = Identity::invoker();
    Nucleus::bare(&id)
        .args(["--trust-level", "untrusted"])
        .run(&["true"])
        .assert_refused("needs the gVisor runtime");
    let out = Nucleus::new(&id)
        .args(["--trust-level", "untrusted", "--allow-degraded-security"])
        .run(&["true"]);
    out.assert_code(0);
    assert!(out.stderr.contains("no gVisor runtime here"), "{out}");
    Nucleus::bare(&id)
        .args([
            "--trust-level",
            "untrusted",
            "--allow-degraded-security",
            "--network",
            "host",
            "--allow-host-network",
        ])
        .run(&["true"])
        .assert_refused("never gets the host's network");
    // Only the flag: no variable in nucleus's environment stands in for it.
    let mut spoofed = Nucleus::bare(&id).args(["--trust-level", "untrusted"]);
    for name in [
        "NUCLEUS_ALLOW_DEGRADED_SECURITY",
        "NUCLEUS_ALLOW_DEGRADED",
        "ALLOW_DEGRADED_SECURITY",
    ] {
        spoofed = spoofed.env(name, "1");
    }
    spoofed
        .run(&["true"])
        .assert_refused("needs the gVisor runtime");
}

#[test]
fn strict_agent_runs_and_audits_its_mounts() {
    let Some(user) = Who::User.resolve() else {
        return;
    };
    // The audit runs after setup; a clean table lets the workload start.
    let out = Nucleus::new(&user)
        .args(["--service-mode", "strict-agent", "-v", "/tmp:/data:ro"])
        .run(&["true"]);
    out.assert_code(0);
    // As root, only with ids remapped away from the host's root.
    if let Some(root) = Who::Root.resolve() {
        Nucleus::new(&root)
            .args(["--service-mode", "strict-agent", "--userns", "subids"])
            .run(&["true"])
            .assert_code(0);
    }
}

#[test]
fn the_audit_log_has_a_json_line_per_decision() {
    let id = Identity::invoker();
    let dir = super::harness::TempDir::new("audit-log");
    let log = dir.join("audit.ndjson");
    let log_arg = log.to_str().unwrap();
    Nucleus::new(&id)
        .args(["--audit-log", log_arg, "--allow-degraded-security"])
        .run(&["true"])
        .assert_code(0);
    Nucleus::bare(&id)
        .args([
            "--audit-log",
            log_arg,
            "--service-mode",
            "strict-agent",
            "--network",
            "host",
            "--allow-host-network",
        ])
        .run(&["true"]);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["start", "exit", "refused"], "{text}");
    let start = &lines[0];
    assert_eq!(start["mode"], "agent");
    assert!(start["plan_digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert_eq!(start["seccomp_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(start["seccomp_mode"], "enforce");
    assert!(
        start["degraded"][0]
            .as_str()
            .unwrap()
            .contains("--allow-degraded-security"),
        "{text}"
    );
    assert_eq!(lines[1]["status"], 0);
    assert!(lines[2]["reason"]
        .as_str()
        .unwrap()
        .contains("--network host is only for agent mode"));
}

/// Whether the kernel log has a seccomp record (audit type 1326) for a
/// process named `comm`.
fn seccomp_logged(comm: &str) -> bool {
    let mut cmd = std::process::Command::new("dmesg");
    cmd.arg("--notime");
    let out = helper_output(cmd);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.contains("type=1326") && l.contains(&format!("comm=\"{comm}\"")))
}

#[test]
fn seccomp_log_denied_puts_denials_in_the_kernel_log() {
    let Some(root) = Who::Root.resolve() else {
        return;
    };
    // A unique name for the process, then a call the filter denies
    // (unshare: EPERM).
    let denied = |comm: &str| {
        format!(
            "import ctypes\n\
             libc = ctypes.CDLL(None)\n\
             libc.prctl(15, b'{comm}', 0, 0, 0)\n\
             assert libc.unshare(0x10000000) != 0"
        )
    };
    let tag = format!("nsl{}", std::process::id() % 100_000);
    let (quiet, loud) = (format!("{tag}q"), format!("{tag}l"));
    Nucleus::new(&root)
        .run(&["python3", "-c", &denied(&quiet)])
        .assert_code(0);
    Nucleus::new(&root)
        .arg("--seccomp-log-denied")
        .run(&["python3", "-c", &denied(&loud)])
        .assert_code(0);
    let mut logged = false;
    for _ in 0..20 {
        logged = seccomp_logged(&loud);
        if logged {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(logged, "the denial of {loud} is in dmesg");
    assert!(!seccomp_logged(&quiet), "without the flag, nothing is");
}
