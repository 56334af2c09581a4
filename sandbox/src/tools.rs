//! Running the network tools (iproute2, iptables, nsenter, pasta,
//! slirp4netns) from the executor: found on a fixed PATH, with a clean
//! environment, their stderr becoming the error.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::{Command, Stdio};

use crate::error::Error;
use crate::sys;

pub fn failed(step: String, detail: impl Into<String>) -> Error {
    Error::Setup {
        step,
        source: io::Error::other(detail.into()),
    }
}

/// Where the tools are looked up: a fixed list, never the environment's
/// PATH (a privileged executor must not run what a caller's PATH names;
/// the helper has no environment at all).
const TOOL_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// One of the network tools, with a clean environment.
pub fn tool(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env_clear().env("PATH", TOOL_PATH);
    c
}

/// Runs a command; its stderr becomes the error.
pub fn run(program: &str, args: &[&str]) -> Result<String, Error> {
    let step = || format!("{program} {}", args.join(" "));
    let out = tool(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            failed(
                step(),
                format!("{e} (--network bridge needs iproute2, iptables and util-linux)"),
            )
        })?;
    if !out.status.success() {
        return Err(failed(
            step(),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The sandbox's network namespace, as the executor reaches it: through
/// the descriptor the sandbox handed over (/proc/PID/ns of a sandbox
/// running as another user is closed to an executor without
/// CAP_SYS_PTRACE; the descriptor is not), and, for an unprivileged
/// executor, through the sandbox's user namespace, which owns it.
pub struct Inside<F: AsFd> {
    pub pid: libc::pid_t,
    pub netns: F,
}

/// The paths and nsenter arguments of an `Inside`, valid while this lives
/// (it holds the inheritable copy of the namespace descriptor).
pub struct Entered {
    _netns: OwnedFd,
    pub netns_path: String,
    /// The user namespace to join first, when the executor is not root.
    pub userns_path: Option<String>,
}

impl<F: AsFd> Inside<F> {
    pub fn borrow(&self) -> Inside<BorrowedFd<'_>> {
        Inside {
            pid: self.pid,
            netns: self.netns.as_fd(),
        }
    }

    /// The sandbox's user namespace (its creator, the executor, may open it).
    pub fn userns_path(&self) -> String {
        format!("/proc/{}/ns/user", self.pid)
    }

    pub fn enter(&self) -> Result<Entered, Error> {
        let copy = sys::dup_inheritable(self.netns.as_fd())
            .map_err(|e| failed("passing the network namespace on".into(), e.to_string()))?;
        Ok(Entered {
            netns_path: format!("/proc/self/fd/{}", copy.as_raw_fd()),
            _netns: copy,
            userns_path: (sys::geteuid() != 0).then(|| self.userns_path()),
        })
    }
}

impl Entered {
    /// nsenter with the arguments that put `program` in the namespace.
    pub fn nsenter(&self, program: &str) -> Command {
        let mut c = tool("nsenter");
        if let Some(user) = &self.userns_path {
            c.args(["--preserve-credentials", &format!("--user={user}")]);
        }
        c.args([&format!("--net={}", self.netns_path), "--", program]);
        c
    }

    /// Runs `program args` in the namespace with `input` on its stdin;
    /// its stderr becomes the error.
    pub fn run_with_input(&self, program: &str, args: &[&str], input: &str) -> Result<(), Error> {
        let step = || format!("{program} {} (in the sandbox)", args.join(" "));
        let mut child = self
            .nsenter(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(step(), e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .map_err(|e| failed(step(), e.to_string()))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| failed(step(), e.to_string()))?;
        if !out.status.success() {
            return Err(failed(
                step(),
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        Ok(())
    }
}
