//! Spawning nucleus, reading its output with deadlines, and checking that
//! a finished run left nothing behind.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{fixture, mountinfo_lines, sys, Identity, DEADLINE, PROBE};

/// How long an orphaned sandbox process may take to die.
const ORPHAN_GRACE: Duration = Duration::from_secs(5);

/// Nucleus processes spawned and not yet reaped (pid → count), so the
/// leftover check can tell them from orphans. Spawning holds the lock, so
/// a check never sees a child that is not registered yet.
static LIVE: Mutex<Option<HashMap<i32, usize>>> = Mutex::new(None);

fn live() -> MutexGuard<'static, Option<HashMap<i32, usize>>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unregister(pid: i32) {
    let mut live = live();
    let map = live.get_or_insert_with(HashMap::new);
    if let Some(n) = map.get_mut(&pid) {
        *n -= 1;
        if *n == 0 {
            map.remove(&pid);
        }
    }
}

/// A `nucleus run` command line being built.
#[derive(Debug)]
pub struct Nucleus {
    id: Identity,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    leak: Option<(File, RawFd)>,
}

impl Nucleus {
    /// `nucleus run -v PROBE_DIR:/probe:ro` as `id`.
    pub fn new(id: &Identity) -> Nucleus {
        let mut volume = fixture().probe_dir().as_os_str().to_owned();
        volume.push(":/probe:ro");
        let mut n = Nucleus::bare(id);
        n.args = vec!["-v".into(), volume];
        n
    }

    /// `nucleus run` as `id`, with no probe volume.
    pub fn bare(id: &Identity) -> Nucleus {
        Nucleus {
            id: id.clone(),
            args: Vec::new(),
            env: Vec::new(),
            leak: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Nucleus {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Nucleus
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets a variable in nucleus's own environment.
    pub fn env(mut self, key: &str, value: &str) -> Nucleus {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Opens `file` and hands it to nucleus as descriptor `fd`, without
    /// close-on-exec, as a careless caller would.
    pub fn leak_fd(mut self, file: &Path, fd: RawFd) -> Nucleus {
        let f = File::open(file).unwrap_or_else(|e| panic!("opening {}: {e}", file.display()));
        self.leak = Some((f, fd));
        self
    }

    /// Runs `nucleus run ARGS -- CMD` to completion.
    pub fn run(self, cmd: &[&str]) -> Output {
        self.spawn(cmd).finish()
    }

    /// Runs the probe with `args` to completion.
    pub fn probe(self, args: &[&str]) -> Output {
        let mut cmd = vec![PROBE];
        cmd.extend_from_slice(args);
        self.run(&cmd)
    }

    pub fn spawn(self, cmd: &[&str]) -> Running {
        let fx = fixture();
        let mut c = Command::new(&fx.nucleus);
        c.arg("run")
            .args(&self.args)
            .arg("--")
            .args(cmd)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if self.id.switch {
            // std drops the supplementary groups when root sets the uid.
            c.uid(self.id.uid).gid(self.id.gid);
        }
        if let Some((file, fd)) = &self.leak {
            sys::leak_fd_into(&mut c, file.as_raw_fd(), *fd);
        }
        let label = format!("as {}: {:?}", self.id.name, c);
        let child = {
            let mut live = live();
            let child = c
                .spawn()
                .unwrap_or_else(|e| panic!("spawning {label}: {e}"));
            let pid = child_pid(&child);
            *live
                .get_or_insert_with(HashMap::new)
                .entry(pid)
                .or_default() += 1;
            child
        };
        drop(self.leak);
        Running::start(child, label)
    }
}

/// Runs a helper command of a test (not nucleus) to completion,
/// registered like a nucleus run so that other tests' leftover checks do
/// not take it for an orphan.
pub fn helper_output(mut cmd: Command) -> std::process::Output {
    let child = {
        let mut live = live();
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        *live
            .get_or_insert_with(HashMap::new)
            .entry(child_pid(&child))
            .or_default() += 1;
        child
    };
    let pid = child_pid(&child);
    let out = child.wait_with_output().unwrap();
    unregister(pid);
    out
}

fn child_pid(child: &Child) -> i32 {
    i32::try_from(child.id()).unwrap_or(i32::MAX)
}

/// A nucleus process that is running.
#[derive(Debug)]
pub struct Running {
    child: Option<Child>,
    pid: i32,
    pidfd: OwnedFd,
    lines: Receiver<String>,
    stdout: String,
    stderr: Receiver<String>,
    started: Instant,
    label: String,
}

impl Running {
    fn start(mut child: Child, label: String) -> Running {
        let pid = child_pid(&child);
        let pidfd = sys::pidfd_open(pid).unwrap_or_else(|e| panic!("pidfd_open {pid}: {e}"));
        let (line_tx, lines) = mpsc::channel();
        let (err_tx, stderr) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut out = BufReader::new(out);
                let mut line = Vec::new();
                while out.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    let _ = line_tx.send(String::from_utf8_lossy(&line).into_owned());
                    line.clear();
                }
            });
        }
        if let Some(mut err) = child.stderr.take() {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = err.read_to_end(&mut bytes);
                let _ = err_tx.send(String::from_utf8_lossy(&bytes).into_owned());
            });
        }
        Running {
            child: Some(child),
            pid,
            pidfd,
            lines,
            stdout: String::new(),
            stderr,
            started: Instant::now(),
            label,
        }
    }

    /// Nucleus's pid on the host.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The next line of stdout, without its line ending.
    pub fn line(&mut self) -> String {
        match self.lines.recv_timeout(DEADLINE) {
            Ok(line) => {
                self.stdout.push_str(&line);
                line.trim_end_matches(['\r', '\n']).to_owned()
            }
            Err(e) => panic!("{}: no line on stdout ({e:?})", self.label),
        }
    }

    pub fn signal(&self, sig: i32) {
        sys::kill(self.pid, sig).unwrap_or_else(|e| panic!("kill {} {sig}: {e}", self.pid));
    }

    /// Whether nucleus is still running (not exited, even as a zombie).
    pub fn is_running(&self) -> bool {
        !sys::readable_within(self.pidfd.as_fd(), Duration::ZERO).unwrap_or(true)
    }

    /// Waits for nucleus to exit, collects its output and checks that it
    /// left nothing behind.
    pub fn finish(mut self) -> Output {
        let exited = sys::readable_within(self.pidfd.as_fd(), DEADLINE).unwrap_or(false);
        if !exited {
            let _ = sys::kill(self.pid, libc::SIGKILL);
        }
        let status = self.reap();
        assert!(exited, "{}: did not exit within {DEADLINE:?}", self.label);
        let elapsed = self.started.elapsed();
        let mut stdout = std::mem::take(&mut self.stdout);
        loop {
            match self.lines.recv_timeout(DEADLINE) {
                Ok(line) => stdout.push_str(&line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: stdout still open after exit", self.label)
                }
            }
        }
        let stderr = self
            .stderr
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|e| panic!("{}: stderr not closed after exit ({e:?})", self.label));
        let out = Output {
            command: std::mem::take(&mut self.label),
            status,
            stdout,
            stderr,
            elapsed,
        };
        assert_nothing_left_behind(&out);
        out
    }

    fn reap(&mut self) -> ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("{}: reaped twice", self.label);
        };
        let status = child.wait();
        unregister(self.pid);
        status.unwrap_or_else(|e| panic!("{}: wait: {e}", self.label))
    }
}

impl Drop for Running {
    /// A test that failed half-way still kills and reaps its nucleus.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            unregister(self.pid);
        }
    }
}

/// What a finished nucleus run produced.
#[derive(Debug)]
pub struct Output {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n  status: {}\n  stdout: {:?}\n  stderr: {:?}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn assert_code(&self, code: i32) -> &Output {
        assert_eq!(self.code(), Some(code), "exit code\n{self}");
        self
    }

    /// The last non-empty stdout line, parsed as JSON.
    pub fn json(&self) -> Value {
        let line = self
            .stdout
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or_else(|| panic!("no JSON on stdout\n{self}"));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON ({e})\n{self}"))
    }

    /// The only line of stderr.
    pub fn stderr_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one stderr line\n{self}");
        lines[0]
    }

    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// nucleus refused before running anything: exit 125, nothing on
    /// stdout, one `nucleus: ` line on stderr that names `flag`.
    pub fn assert_refused(&self, flag: &str) -> &str {
        self.assert_code(125);
        assert_eq!(self.stdout, "", "{self}");
        let line = self.stderr_line();
        assert!(line.starts_with("nucleus: "), "{self}");
        assert!(
            line.contains(flag),
            "the message does not name {flag}\n{self}"
        );
        line
    }
}

// ---------------------------------------------------------------- leftovers

/// The test process's mount table is as it was, and no process other than
/// a running nucleus of another test is our child (we are a subreaper: a
/// sandbox that outlived its nucleus would be reparented to us).
fn assert_nothing_left_behind(out: &Output) {
    let mounts = mountinfo_lines();
    assert_eq!(
        mounts,
        fixture().mounts,
        "the test process's mount table changed\n{out}"
    );
    let left = leftover_children();
    assert!(
        left.is_empty(),
        "processes left behind: {left:?}\nafter {out}"
    );
}

/// Children of ours that are not a registered nucleus and do not die
/// within the grace period (they are killed so later tests start clean).
fn leftover_children() -> Vec<String> {
    let live = live();
    let registered = |pid: &i32| live.as_ref().is_some_and(|m| m.contains_key(pid));
    let mut left = Vec::new();
    for pid in children_of_self().into_iter().filter(|p| !registered(p)) {
        let cmdline = cmdline(pid);
        if !dies_within(pid, ORPHAN_GRACE) {
            let _ = sys::kill(pid, libc::SIGKILL);
            let _ = dies_within(pid, ORPHAN_GRACE);
            left.push(format!("{pid} {cmdline:?}"));
        }
    }
    left
}

/// Our children, from every thread's `children` list.
pub fn children_of_self() -> Vec<i32> {
    children_of(std::process::id())
}

/// Children of `pid`, from every one of its threads.
pub fn children_of(pid: u32) -> Vec<i32> {
    let mut pids = Vec::new();
    let tasks = fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    for task in tasks.flatten() {
        let text = fs::read_to_string(task.path().join("children")).unwrap_or_default();
        pids.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    pids
}

/// `/proc/PID/cmdline` with NULs as spaces; empty if gone.
pub fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Waits for `pid` to exit, reaping it if it is our child.
pub fn dies_within(pid: i32, grace: Duration) -> bool {
    let exited = match sys::pidfd_open(pid) {
        Ok(fd) => sys::readable_within(fd.as_fd(), grace).unwrap_or(false),
        Err(_) => true,
    };
    exited && sys::reap_if_exited(pid).unwrap_or(true)
}
