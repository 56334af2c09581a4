//! `--violations`: each system call the profile denies is reported once,
//! and the workload sees exactly what it sees without the report.

use super::harness::{give, Identity, Nucleus, TempDir};

as_root_and_user!(denied_calls_are_reported_with_the_profiles_errno);

/// ptrace twice (EPERM), clone3 (ENOSYS), unshare (EPERM), a number
/// nothing names (the default: ENOSYS), ioctl TIOCSTI (EPERM only for
/// that argument), getpid with the handover's marker (allowed): each
/// call's errno, 0 for success. Then any seccomp listener the workload
/// or PID 1 (the mini-init, with --init) holds: none may.
const CALLS: &str = "import ctypes\n\
libc = ctypes.CDLL(None, use_errno=True)\n\
def call(nr, *args):\n\
\x20   ctypes.set_errno(0)\n\
\x20   r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])\n\
\x20   return ctypes.get_errno() if r == -1 else 0\n\
print(call(101, 0, 0, 0, 0), call(101, 0, 0, 0, 0), call(435, 0, 0), call(272, 0x10000000),\n\
\x20     call(500), call(16, 0, 0x5412, 0), call(39, 0x6e75636c))\n\
import os\n\
for pid in ['self', '1']:\n\
\x20   for fd in os.listdir(f'/proc/{pid}/fd'):\n\
\x20       try: link = os.readlink(f'/proc/{pid}/fd/{fd}')\n\
\x20       except OSError: continue\n\
\x20       if 'seccomp' in link: print('listener', pid, fd)\n";

fn denied_calls_are_reported_with_the_profiles_errno(id: &Identity) {
    let dir = TempDir::new("violations");
    give(dir.path(), id);
    let report = dir.join("violations.ndjson");
    let plain = Nucleus::new(id).run(&["python3", "-c", CALLS]);
    plain.assert_code(0);
    assert_eq!(plain.stdout.trim(), "1 1 38 1 38 1 0", "{plain}");
    let audit = dir.join("audit.ndjson");
    let reported = Nucleus::new(id)
        .arg("--violations")
        .arg(&report)
        .arg("--audit-log")
        .arg(&audit)
        .run(&["python3", "-c", CALLS]);
    reported.assert_code(0);
    assert_eq!(reported.stdout, plain.stdout, "the same errnos\n{reported}");
    let audit = std::fs::read_to_string(&audit).unwrap();
    assert!(audit.contains(r#""seccomp_mode":"report""#), "{audit}");
    let with_init = Nucleus::new(id)
        .args(["--init", "--violations"])
        .arg(dir.join("with-init.ndjson"))
        .run(&["python3", "-c", CALLS]);
    with_init.assert_code(0);
    assert_eq!(with_init.stdout, plain.stdout, "{with_init}");
    let text = std::fs::read_to_string(&report).unwrap();
    for line in [
        r#"{"kind":"seccomp","syscall":"ptrace","nr":101,"arch":"x86_64","errno":1}"#,
        r#"{"kind":"seccomp","syscall":"clone3","nr":435,"arch":"x86_64","errno":38}"#,
        r#"{"kind":"seccomp","syscall":"unshare","nr":272,"arch":"x86_64","errno":1}"#,
        r#"{"kind":"seccomp","syscall":null,"nr":500,"arch":"x86_64","errno":38}"#,
        r#"{"kind":"seccomp","syscall":"ioctl","nr":16,"arch":"x86_64","errno":1}"#,
    ] {
        assert_eq!(
            text.lines().filter(|l| *l == line).count(),
            1,
            "{line} once in:\n{text}"
        );
    }
    assert!(!text.contains("getpid"), "{text}");
}

#[test]
fn violations_are_refused_where_they_cannot_apply() {
    let id = Identity::invoker();
    Nucleus::bare(&id)
        .args(["--violations", "/dev/null", "--egress-report", "/dev/null"])
        .args(["--network", "bridge", "--egress-allow", "192.0.2.0/24"])
        .run(&["true"])
        .assert_refused("--violations FILE takes the egress report too");
    Nucleus::bare(&id)
        .args(["--violations", "/dev/null", "--seccomp-mode", "trace"])
        .args(["--seccomp-log", "/dev/null"])
        .run(&["true"])
        .assert_refused("trace denies nothing");
    Nucleus::bare(&id)
        .args(["--violations", "/dev/null", "--service-mode", "production"])
        .args(["--memory", "64M"])
        .run(&["true"])
        .assert_refused("agent modes only");
}
