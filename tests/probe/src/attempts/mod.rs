//! `nucleus-probe try ATTEMPT [ARGS...]`: one escape or capability attempt,
//! reported as `{"attempt","ok","errno","detail"}`. The JSON says what
//! happened; only a malformed command line is an error (exit 2).

mod fs;
mod kernel;
mod process;

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::str::FromStr;

use crate::json::{Json, ObjBuilder};
use crate::sys::{Errno, SysResult};

/// Every attempt with its arguments, for the usage text.
pub const ATTEMPTS: &[&str] = &[
    "write PATH",
    "read PATH",
    "exists PATH",
    "mkdir PATH",
    "unlink PATH",
    "chown PATH UID GID",
    "mknod PATH",
    "mount-tmpfs DIR",
    "open-tree PATH",
    "fsopen",
    "umount PATH",
    "pivot-root",
    "chroot PATH",
    "cwd",
    "fd-read FD",
    "unshare-user",
    "unshare-mount",
    "clone-newuser",
    "clone3 [newuser]",
    "setns PATH",
    "ptrace-attach PID",
    "ptrace-traceme",
    "x32-syscall",
    "i386-syscall",
    "setuid UID",
    "setgid GID",
    "sethostname NAME",
    "kill PID SIG",
    "reboot",
    "cap-raise CAP",
    "exec PATH [ARGS...]",
    "bpf",
    "keyctl",
    "add-key",
    "io-uring-setup",
    "userfaultfd",
    "perf-event-open",
    "tiocsti",
    "tiocsti-high-bits",
    "tioclinux [SUBCODE]",
    "connect-tcp IP PORT",
];

/// A command line the probe cannot act on; the message goes to stderr.
#[derive(Debug)]
pub struct Usage(pub String);

/// What one attempt observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub errno: Option<i32>,
    pub detail: String,
}

impl Outcome {
    pub fn success(detail: impl Into<String>) -> Outcome {
        Outcome {
            ok: true,
            errno: None,
            detail: detail.into(),
        }
    }

    /// A failed call: errno plus its description, prefixed by `step` when
    /// the attempt has more than one call (empty `step` otherwise).
    pub fn failed(step: &str, err: Errno) -> Outcome {
        Outcome {
            ok: false,
            errno: Some(err.0),
            detail: with_step(step, &err.describe()),
        }
    }

    /// An io::Error; errors without an OS code keep errno null.
    pub fn io_failed(step: &str, err: &std::io::Error) -> Outcome {
        match err.raw_os_error() {
            Some(code) => Outcome::failed(step, Errno(code)),
            None => Outcome {
                ok: false,
                errno: None,
                detail: with_step(step, &err.to_string()),
            },
        }
    }

    /// Success with `detail(value)`, or the call's errno.
    pub fn from_sys<T>(res: SysResult<T>, detail: impl FnOnce(T) -> String) -> Outcome {
        match res {
            Ok(v) => Outcome::success(detail(v)),
            Err(e) => Outcome::failed("", e),
        }
    }

    pub fn to_json(&self, attempt: &str) -> Json {
        ObjBuilder::new()
            .field("attempt", attempt)
            .field("ok", self.ok)
            .field("errno", Json::opt(self.errno))
            .field("detail", self.detail.as_str())
            .build()
    }
}

/// Positional arguments of one attempt.
#[derive(Debug)]
pub struct Args<'a> {
    attempt: &'a str,
    args: &'a [OsString],
}

impl<'a> Args<'a> {
    fn usage(&self) -> Usage {
        let spec = ATTEMPTS
            .iter()
            .find(|s| s.split(' ').next() == Some(self.attempt))
            .copied()
            .unwrap_or(self.attempt);
        Usage(format!("usage: nucleus-probe try {spec}"))
    }

    /// Requires between `min` and `max` arguments.
    fn count(&self, min: usize, max: usize) -> Result<(), Usage> {
        if (min..=max).contains(&self.args.len()) {
            Ok(())
        } else {
            Err(self.usage())
        }
    }

    fn os(&self, i: usize) -> Result<&'a OsStr, Usage> {
        self.args
            .get(i)
            .map(OsString::as_os_str)
            .ok_or_else(|| self.usage())
    }

    fn path(&self, i: usize) -> Result<&'a Path, Usage> {
        self.os(i).map(Path::new)
    }

    fn cstr(&self, i: usize) -> Result<CString, Usage> {
        CString::new(self.os(i)?.as_bytes()).map_err(|_| self.usage())
    }

    fn num<T: FromStr>(&self, i: usize) -> Result<T, Usage> {
        let text = self.os(i)?.to_str().ok_or_else(|| self.usage())?;
        text.parse().map_err(|_| self.usage())
    }

    fn rest(&self) -> &'a [OsString] {
        self.args
    }
}

/// Runs the named attempt. `Err` only for an unknown attempt or bad args.
pub fn run(attempt: &str, args: &[OsString]) -> Result<Outcome, Usage> {
    let a = Args { attempt, args };
    match attempt {
        "write" | "read" | "exists" | "mkdir" | "unlink" | "chown" | "mknod" | "mount-tmpfs"
        | "open-tree" | "fsopen" | "umount" | "pivot-root" | "chroot" | "cwd" | "fd-read" => {
            fs::run(attempt, &a)
        }
        "unshare-user" | "unshare-mount" | "clone-newuser" | "clone3" | "setns"
        | "ptrace-attach" | "ptrace-traceme" | "x32-syscall" | "i386-syscall" | "setuid"
        | "setgid" | "sethostname" | "kill" | "reboot" | "cap-raise" | "exec" => {
            process::run(attempt, &a)
        }
        "bpf" | "keyctl" | "add-key" | "io-uring-setup" | "userfaultfd" | "perf-event-open"
        | "tiocsti" | "tiocsti-high-bits" | "tioclinux" | "connect-tcp" => kernel::run(attempt, &a),
        _ => Err(Usage(format!("unknown attempt {attempt:?}"))),
    }
}

fn with_step(step: &str, text: &str) -> String {
    if step.is_empty() {
        text.to_owned()
    } else {
        format!("{step}: {text}")
    }
}

/// Bytes as text for a detail field: at most `max` bytes, lossily decoded.
pub fn lossy_prefix(bytes: &[u8], max: usize) -> String {
    let cut = bytes.get(..max).unwrap_or(bytes);
    String::from_utf8_lossy(cut).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_attempt_is_dispatched() {
        for spec in ATTEMPTS {
            let name = spec.split(' ').next().unwrap_or_default();
            // No arguments: either a usage error for its args or an attempt
            // that needs none. Only the harmless argument-free ones are run.
            let needs_args = spec.contains(' ') && !spec.contains('[');
            if needs_args {
                let res = run(name, &[]);
                assert!(
                    matches!(&res, Err(Usage(m)) if m.contains(name)),
                    "{name}: {res:?}"
                );
            }
        }
        assert!(run("no-such-attempt", &[]).is_err());
    }

    #[test]
    fn failed_outcome_carries_errno_and_text() {
        let o = Outcome::failed("open", Errno(libc::EPERM));
        assert!(!o.ok);
        assert_eq!(o.errno, Some(libc::EPERM));
        assert_eq!(o.detail, "open: Operation not permitted");
        assert_eq!(
            o.to_json("write").render(),
            r#"{"attempt":"write","ok":false,"errno":1,"detail":"open: Operation not permitted"}"#
        );
    }

    #[test]
    fn read_and_exists_work_on_a_temp_file() {
        let dir = std::env::temp_dir().join(format!("nucleus-probe-test-{}", std::process::id()));
        let file = dir.join("f");
        let os = |p: &Path| vec![p.as_os_str().to_owned()];
        assert!(run("mkdir", &os(&dir)).map(|o| o.ok).unwrap_or(false));
        assert!(run("write", &os(&file)).map(|o| o.ok).unwrap_or(false));
        let read = run("read", &os(&file));
        assert_eq!(read.map(|o| o.detail).unwrap_or_default(), "x");
        assert!(run("unlink", &os(&file)).map(|o| o.ok).unwrap_or(false));
        let gone = run("exists", &os(&file));
        assert_eq!(gone.map(|o| o.errno).ok().flatten(), Some(libc::ENOENT));
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    fn lossy_prefix_cuts_and_replaces() {
        assert_eq!(lossy_prefix(b"abcdef", 3), "abc");
        assert_eq!(lossy_prefix(b"ab", 3), "ab");
        assert_eq!(lossy_prefix(&[0xff, b'a'], 10), "\u{fffd}a");
    }
}
