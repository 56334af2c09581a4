//! Service modes at the command line, the mini-init and the kernel
//! lockdown requirement.

use super::harness::{Identity, Nucleus, Who};

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
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t securityfs -o ro securityfs /sys/kernel/security 2>/dev/null; cat /sys/kernel/security/lockdown")
        .output()
        .ok()?;
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
