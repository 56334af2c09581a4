//! The mount audit (strict-agent and production): after pivot_root, the
//! sandbox reads its own /proc/self/mountinfo and checks that every mount
//! it made carries the flags it was made with, and that no mount at all
//! allows setuid. A mismatch (a kernel that dropped a flag, a mount that
//! was not where it should be) is fatal before anything runs.
//!
//! What is expected comes from the mount steps themselves; the check is
//! a pure function of the mountinfo text, tested with doctored tables.

use std::collections::BTreeMap;

use protocol::Plan;

use crate::error::Error;
use crate::mounts::Step;

/// Flags a mount must have (more are fine).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub ro: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

impl Flags {
    const NOSUID_NODEV: Flags = Flags {
        ro: false,
        nosuid: true,
        nodev: true,
        noexec: false,
    };
}

/// The flags each mount point the steps make must have, topmost mount.
pub fn expected(plan: &Plan, steps: &[Step]) -> BTreeMap<String, Flags> {
    let mut want = BTreeMap::new();
    want.insert(
        "/".to_owned(),
        Flags {
            ro: plan.root.read_only,
            ..Flags::NOSUID_NODEV
        },
    );
    for step in steps {
        let (target, flags) = match step {
            Step::Bind {
                target, read_only, ..
            }
            | Step::CopyTree {
                target, read_only, ..
            } => (
                target.as_str(),
                Flags {
                    ro: *read_only,
                    ..Flags::NOSUID_NODEV
                },
            ),
            Step::Tmpfs { target, noexec, .. } => (
                target.as_str(),
                Flags {
                    noexec: *noexec,
                    ..Flags::NOSUID_NODEV
                },
            ),
            Step::Proc { .. } => (
                "/proc",
                Flags {
                    noexec: true,
                    ..Flags::NOSUID_NODEV
                },
            ),
            Step::Sysfs => (
                "/sys",
                Flags {
                    ro: true,
                    nosuid: true,
                    nodev: true,
                    noexec: true,
                },
            ),
            Step::SealMount(target) => {
                if let Some(f) = want.get_mut(target.as_str()) {
                    f.ro = true;
                }
                continue;
            }
            Step::SealRoot => {
                if let Some(f) = want.get_mut("/") {
                    f.ro = true;
                }
                continue;
            }
            _ => continue,
        };
        want.insert(target.to_owned(), flags);
    }
    want
}

/// Every way `mountinfo` falls short of `want`, and every mount that
/// allows setuid programs.
pub fn check(mountinfo: &str, want: &BTreeMap<String, Flags>) -> Vec<String> {
    let mut found: BTreeMap<String, Flags> = BTreeMap::new();
    let mut problems = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(point), Some(options)) = (fields.get(4), fields.get(5)) else {
            continue;
        };
        let has = |o: &str| options.split(',').any(|x| x == o);
        let flags = Flags {
            ro: has("ro"),
            nosuid: has("nosuid"),
            nodev: has("nodev"),
            noexec: has("noexec"),
        };
        if !flags.nosuid {
            problems.push(format!("{point} allows setuid programs ({options})"));
        }
        // Later lines are mounted on top: the last one is what is seen.
        found.insert(unescape(point), flags);
    }
    for (point, need) in want {
        let Some(have) = found.get(point) else {
            problems.push(format!("{point} is not a mount point"));
            continue;
        };
        for (name, needed, present) in [
            ("ro", need.ro, have.ro),
            ("nosuid", need.nosuid, have.nosuid),
            ("nodev", need.nodev, have.nodev),
            ("noexec", need.noexec, have.noexec),
        ] {
            if needed && !present {
                problems.push(format!("{point} is not {name}"));
            }
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Reads the sandbox's own mount table and checks it.
pub fn verify(plan: &Plan, steps: &[Step]) -> Result<(), Error> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| Error::Setup {
        step: "the mount audit: reading /proc/self/mountinfo".into(),
        source: e,
    })?;
    let problems = check(&text, &expected(plan, steps));
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Setup {
        step: format!("the mount audit: {}", problems.join("; ")),
        source: std::io::Error::from_raw_os_error(libc::EPERM),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys;
    use std::os::fd::AsFd;

    /// What the sandbox sees for the sample plan (read-only root, /usr
    /// bound read-only), as a real run printed it.
    const GOOD: &str = "\
1 0 0:1 / / ro,nosuid,nodev,relatime - tmpfs tmpfs rw
2 1 0:2 / /tmp rw,nosuid,nodev,relatime - tmpfs tmpfs rw
3 1 8:1 /usr /usr ro,nosuid,nodev,relatime - ext4 /dev/vda rw
4 1 0:3 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
5 1 0:4 / /dev ro,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw
6 5 0:5 /null /dev/null rw,nosuid,noexec,relatime - devtmpfs udev rw
7 5 0:6 / /dev/pts rw,nosuid,noexec,relatime - devpts devpts rw
8 5 0:7 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw
9 1 0:8 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
";

    fn want() -> BTreeMap<String, Flags> {
        let plan = protocol::testing::sample_plan();
        expected(&plan, &crate::mounts::steps(&plan))
    }

    #[test]
    fn what_the_steps_made_passes() {
        assert_eq!(check(GOOD, &want()), Vec::<String>::new());
    }

    #[test]
    fn a_wrong_flag_is_caught() {
        let rw_usr = GOOD.replace("/usr ro,", "/usr rw,");
        assert_eq!(check(&rw_usr, &want()), ["/usr is not ro"]);
        let exec_proc = GOOD.replace("/proc rw,nosuid,nodev,noexec", "/proc rw,nosuid,nodev");
        assert_eq!(check(&exec_proc, &want()), ["/proc is not noexec"]);
        let suid = GOOD.replace("/dev/pts rw,nosuid,", "/dev/pts rw,");
        assert_eq!(
            check(&suid, &want()),
            ["/dev/pts allows setuid programs (rw,noexec,relatime)"]
        );
        let missing = GOOD.replace("/sys ro", "/sysx ro");
        assert_eq!(check(&missing, &want()), ["/sys is not a mount point"]);
    }

    #[test]
    fn the_topmost_mount_counts() {
        let covered = format!("{GOOD}10 3 0:9 / /usr rw,nosuid,nodev - tmpfs tmpfs rw\n");
        assert_eq!(check(&covered, &want()), ["/usr is not ro"]);
    }

    /// The audit on a real mount table: the sample plan's root made by the
    /// real steps in new namespaces passes; then the test's own hook, run
    /// between the setup and the audit, makes /usr writable again, and
    /// the audit catches it.
    #[test]
    fn a_flag_undone_on_a_real_mount_is_caught() {
        let plan = protocol::testing::sample_plan();
        let (uid, gid) = (sys::geteuid(), sys::getgid());
        let ns = libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWNET;
        let pidfd = match sys::fork_into_namespaces(ns as u64) {
            Ok(sys::Forked::Child) => sys::exit_now(audit_twice(&plan, uid, gid)),
            Ok(sys::Forked::Parent { pidfd, .. }) => pidfd,
            Err(e) if std::env::var_os("NUCLEUS_REQUIRE_ALL").is_none() => {
                eprintln!(
                    "SKIPPED a_flag_undone_on_a_real_mount_is_caught: no user namespace here ({e})"
                );
                return;
            }
            Err(e) => panic!("a user namespace: {e}"),
        };
        let status = sys::wait_pidfd(pidfd.as_fd()).unwrap();
        assert_eq!(
            status,
            sys::WaitStatus::Exited(0),
            "see the child's message above"
        );
    }

    /// In the new namespaces (PID 1 there): 0 when the audit passes the
    /// real root and then fails it with /usr made writable.
    fn audit_twice(plan: &Plan, uid: u32, gid: u32) -> i32 {
        let maps = [
            ("/proc/self/setgroups", "deny".to_owned()),
            ("/proc/self/uid_map", format!("0 {uid} 1")),
            ("/proc/self/gid_map", format!("0 {gid} 1")),
        ];
        for (file, text) in maps {
            if let Err(e) = std::fs::write(file, text) {
                say(format!("{file}: {e}"));
                return 1;
            }
        }
        let steps = crate::mounts::steps(plan);
        let built = crate::rootfs::NewRoot::begin(&plan.root, &steps, Default::default()).and_then(
            |mut root| {
                root.apply(&steps)?;
                root.enter(false)
            },
        );
        if let Err(e) = built {
            say(format!("building the root: {e}"));
            return 2;
        }
        if let Err(e) = verify(plan, &steps) {
            say(format!("the real root fails the audit: {e}"));
            return 3;
        }
        // The hook: /usr remounted without MS_RDONLY.
        let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NOSUID | libc::MS_NODEV;
        if let Err(e) = sys::mount(None, c"/usr", None, flags, None) {
            say(format!("making /usr writable: {e}"));
            return 4;
        }
        match verify(plan, &steps) {
            Err(e) if e.to_string().contains("the mount audit: /usr is not ro") => 0,
            other => {
                say(format!("the audit after the hook: {other:?}"));
                5
            }
        }
    }

    /// To the real stderr: the child's copy of the test's captured output
    /// is lost with it.
    fn say(text: String) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "{text}");
    }

    #[test]
    fn escaped_mount_points_are_read_back() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/a\\134b"), "/a\\b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/bad\\9"), "/bad\\9");
    }
}
