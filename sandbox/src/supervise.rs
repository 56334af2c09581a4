//! The caller's side of the fork: create the namespaces, write the id maps,
//! learn whether setup and exec succeeded, then relay signals (and the
//! terminal) until the workload exits or its time runs out.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use protocol::{
    EgressReport, ExitStatus, NetworkMode, Plan, SeccompMode, Workspace, WorkspaceMode,
};

use crate::error::{Context, Error};
use crate::inputs::{Inputs, SyncBack};
use crate::pty::Relay;
use crate::tools::Inside;
use crate::{child, denials, egress, idmap, listener, nflog, sys, trace, tree, uplink};

/// How the workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub status: ExitStatus,
    /// The plan's timeout expired and the sandbox was killed.
    pub timed_out: bool,
}

use crate::signals::FORWARDED;

/// The network namespace is not here: `net` creates it in parallel.
fn namespace_flags(plan: &Plan) -> u64 {
    let mut flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWCGROUP;
    if plan.namespaces.time {
        flags |= libc::CLONE_NEWTIME;
    }
    flags as u64
}

fn copies_workspace(plan: &Plan) -> bool {
    matches!(
        plan.workspace,
        Some(Workspace {
            mode: WorkspaceMode::CopyInOut { .. },
            ..
        })
    )
}

/// Descriptors the sandbox hands back during setup.
struct Handed {
    workspace_copy: Option<OwnedFd>,
    terminal: Option<OwnedFd>,
    /// The thread answering the sandbox's seccomp notifications.
    listener: Option<Listening>,
}

/// What holds the sandbox's seccomp listener.
enum Listening {
    Trace(std::thread::JoinHandle<trace::Seen>),
    Report(std::thread::JoinHandle<denials::Reported>),
}

/// What an executor adds to a sandbox's life; every method has a no-op
/// default.
pub trait Hooks {
    /// Puts the sandbox (its pid in the executor's namespace) into its
    /// cgroup, before anything runs in it.
    fn place(&mut self, _pid: libc::pid_t) -> Result<(), String> {
        Ok(())
    }

    /// The workload has been executed.
    fn started(&mut self) {}

    /// A descriptor to watch while the sandbox runs (a client connection).
    fn watched(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// The watched descriptor is readable (or closed): what to do.
    fn on_watched(&mut self) -> Control {
        Control::Continue
    }
}

/// An executor's order to the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// Pass this signal to the workload.
    Signal(libc::c_int),
    /// Kill the sandbox and stop watching (the client is gone).
    Kill,
    /// The client's terminal is now (rows, cols).
    Resize(u16, u16),
}

/// Runs `plan` to completion. The calling process must be single-threaded.
pub fn run(plan: &Plan, mut inputs: Inputs, hooks: &mut dyn Hooks) -> Result<Outcome, Error> {
    // Kept on this side of the fork: with a terminal, the caller's stdio
    // is what the relay reads and writes (the workload gets the pty); the
    // sync-back target is only ever written from here.
    let relay_io = if plan.process.tty {
        let mut stdio = std::mem::take(&mut inputs.stdio).into_iter();
        stdio.next().zip(stdio.next())
    } else {
        None
    };
    let sync_back = inputs.sync_back.take();
    let trace_to = inputs.seccomp_trace.take();
    let egress = match &plan.network {
        NetworkMode::Bridge(bridge) => bridge.egress.as_ref(),
        _ => None,
    };
    // Looked up before anything is made: a domain that does not resolve
    // is an error that leaves nothing behind.
    let resolved = egress.map(egress::resolve).transpose()?;
    let violations = inputs.violations.take().map(std::fs::File::from);
    let sink = match egress.map(|e| e.report) {
        Some(EgressReport::File) => violations
            .as_ref()
            .map(|f| f.try_clone().map(egress::Sink::Ndjson))
            .transpose()
            .step(|| "keeping the violations file for the egress report".into())?,
        Some(EgressReport::Stderr) => Some(egress::Sink::Lines(
            inputs
                .stdio
                .get(2)
                .map(|e| e.try_clone().map(std::fs::File::from))
                .transpose()
                .step(|| "keeping the caller's stderr for the egress report".into())?,
        )),
        Some(EgressReport::Off) | None => None,
    };
    // Where the seccomp denials go, and the program that sends them
    // there: both checked before anything is made.
    let (denials_to, report_program) = match plan.security.seccomp_mode {
        SeccompMode::Report => {
            let file = violations.ok_or_else(|| Error::Setup {
                step: "--violations: no file for the seccomp denials".into(),
                source: io::Error::from_raw_os_error(libc::EBADF),
            })?;
            let program =
                denials::program(plan.security.seccomp.instructions()).map_err(|detail| {
                    Error::Setup {
                        step: format!("--violations: {detail}"),
                        source: io::Error::from_raw_os_error(libc::E2BIG),
                    }
                })?;
            (Some(file), Some(program))
        }
        SeccompMode::Enforce | SeccompMode::Trace => (None, None),
    };
    let (go_read, go_write) = sys::pipe().step(|| "creating the sync pipe".into())?;
    let (report_read, report_write) = sys::pipe().step(|| "creating the error pipe".into())?;
    // The sandbox sends descriptors back over this: the workspace copy, and
    // the master of the terminal it opens in its own devpts.
    let bridged = matches!(plan.network, NetworkMode::Bridge(_));
    let (control, control_child) = if plan.process.tty || copies_workspace(plan) || bridged {
        let (ours, theirs) = sys::seqpacket_pair().step(|| "creating the control socket".into())?;
        (Some(ours), Some(theirs))
    } else {
        (None, None)
    };
    let mut watched = FORWARDED.to_vec();
    watched.push(libc::SIGWINCH);
    let mask = sys::signal_set(&watched);
    // Blocked before the fork so no signal is lost; the child unblocks.
    sys::sigprocmask(libc::SIG_BLOCK, &mask).step(|| "blocking signals".into())?;
    let signals = sys::signalfd(&mask).step(|| "creating a signalfd".into())?;

    let (pid, pidfd) = match sys::fork_into_namespaces(namespace_flags(plan))
        .step(|| "creating the sandbox namespaces".into())?
    {
        sys::Forked::Child => {
            drop((go_write, report_read, signals, control));
            child::run(child::Setup {
                plan,
                go: go_read,
                report: report_write,
                control: control_child,
                inputs,
                report_program,
            })
        }
        sys::Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop((go_read, report_write, control_child, inputs, report_program));
    let mut attached = None;
    let mut watch = None;

    let started = (|| {
        idmap::write(Path::new("/proc"), pid, &plan.ids)?;
        hooks.place(pid).map_err(Error::Placement)?;
        let mut go = std::fs::File::from(go_write);
        go.write_all(b"1")
            .step(|| "signalling the sandbox".into())?;
        drop(go);
        if let (NetworkMode::Bridge(bridge), Some(sock)) = (&plan.network, &control) {
            // The sandbox says when it is in its namespace; a closed
            // socket means its setup failed, which the report says.
            let Some(netns) =
                sys::recv_fd(sock.as_fd()).step(|| "waiting for the sandbox's network".into())?
            else {
                read_report(report_read)?;
                return Err(Error::Child(
                    "the sandbox ended before its network was set up".into(),
                ));
            };
            let denials = if child::reports_denials(bridge) {
                sys::recv_fd(sock.as_fd())
                    .step(|| "receiving the log of denied packets".into())?
                    .map(nflog::Reader::from)
            } else {
                None
            };
            let (addresses, refresh_at) = resolved.clone().unwrap_or_default();
            attached = Some(uplink::attach(
                bridge,
                &addresses,
                &Inside {
                    pid,
                    netns: netns.as_fd(),
                },
            )?);
            if let Some(policy) = &bridge.egress {
                let report = denials.zip(sink);
                if report.is_some() || !policy.domains.is_empty() {
                    watch = Some(egress::Watch::new(
                        policy,
                        (addresses, refresh_at),
                        Inside { pid, netns },
                        report,
                    ));
                }
            }
            sys::send_byte(sock.as_fd()).step(|| "handing the network over".into())?;
        }
        let receive = |wanted: bool, what: &str| match (&control, wanted) {
            (Some(sock), true) => {
                sys::recv_fd(sock.as_fd()).step(|| format!("receiving {what} from the sandbox"))
            }
            _ => Ok(None),
        };
        let workspace_copy = receive(copies_workspace(plan), "the workspace copy")?;
        let terminal = receive(plan.process.tty, "the terminal")?;
        // Before the report: the sandbox's execve waits for the listener
        // to be taken.
        let exited = || {
            let mut fds = [pollin(pidfd.as_fd())];
            sys::poll(&mut fds, 0).is_ok_and(|n| n > 0)
        };
        let listener = match plan.security.seccomp_mode {
            SeccompMode::Enforce => None,
            SeccompMode::Trace | SeccompMode::Report => {
                let taken = match listener::grab(pidfd.as_fd(), exited) {
                    Err(e) if exited() => {
                        // It failed before its filter: its report says why.
                        read_report(report_read)?;
                        return Err(e);
                    }
                    taken => taken?,
                };
                Some(match denials_to {
                    Some(file) => {
                        let program = plan.security.seccomp.instructions().to_vec();
                        Listening::Report(denials::serve(taken, program, file)?)
                    }
                    None => Listening::Trace(trace::serve(taken)?),
                })
            }
        };
        // A setup failure closes the socket early: the report says why.
        read_report(report_read)?;
        Ok(Handed {
            workspace_copy,
            terminal,
            listener,
        })
    })();
    let handed = match started {
        Ok(handed) => handed,
        Err(e) => {
            // Setup failed: the child has exited or is killed now, and is reaped
            // so nothing is left behind.
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = sys::wait_pidfd(pidfd.as_fd());
            detach(attached);
            return Err(e);
        }
    };

    hooks.started();
    let relay = match handed.terminal {
        Some(master) => Some(Relay::start(master, relay_io)?),
        None => None,
    };
    let outcome = supervise(plan, pidfd, signals, relay, watch.as_mut(), hooks);
    detach(attached);
    let panicked = |what: &str| Error::Setup {
        step: what.into(),
        source: io::Error::other("its thread panicked"),
    };
    match handed.listener {
        Some(Listening::Trace(tracer)) => {
            let seen = tracer
                .join()
                .map_err(|_| panicked("--seccomp-mode trace"))?;
            if let Some(file) = trace_to {
                trace::write(file.into(), &seen)?;
            }
        }
        Some(Listening::Report(reporter)) => {
            reporter.join().map_err(|_| panicked("--violations"))?;
        }
        None => {}
    }
    let outcome = outcome?;
    if let (Some(copy), Some(ws)) = (handed.workspace_copy, &plan.workspace) {
        sync_workspace(copy, ws, outcome.timed_out, sync_back)?;
    }
    Ok(outcome)
}

/// Mirrors the sandbox's copy of the workspace back to the host, as the
/// caller: new and changed files are written, deleted ones removed. The
/// copy stays readable through its descriptor after the sandbox is gone.
fn sync_workspace(
    copy: OwnedFd,
    ws: &Workspace,
    timed_out: bool,
    sync_back: Option<SyncBack>,
) -> Result<(), Error> {
    let WorkspaceMode::CopyInOut { sync_on_timeout } = ws.mode else {
        return Ok(());
    };
    if timed_out && !sync_on_timeout {
        eprintln!("nucleus: the workload timed out: its workspace changes were discarded (--sync-on-timeout keeps them)");
        return Ok(());
    }
    let mirrored = match sync_back {
        None => {
            let host = tree::open_root(Path::new(ws.source.as_str()))
                .step(|| format!("--workspace {}: opening it to sync back", ws.source))?;
            tree::mirror(copy.as_fd(), host.as_fd())
        }
        Some(target) => mirror_as(copy, target)
            .step(|| format!("--workspace {}: syncing back as its owner", ws.source))?,
    };
    let stats = mirrored.map_err(|e| Error::Setup {
        step: format!("--workspace {}: syncing back {}", ws.source, e.path),
        source: e.source,
    })?;
    tracing::info!(
        written = stats.written,
        removed = stats.removed,
        "workspace synced back"
    );
    Ok(())
}

/// The mirror on a thread of its own that first takes the caller's ids:
/// ids and capabilities are per thread to the kernel (the raw syscalls
/// skip libc's process-wide broadcast), so the thread writes with exactly
/// the caller's rights (no capabilities once no id is 0) while the
/// executor keeps its own. The caller's descriptor names the directory;
/// no path is resolved with the executor's privileges.
fn mirror_as(
    copy: OwnedFd,
    target: SyncBack,
) -> io::Result<Result<tree::SyncStats, tree::TreeError>> {
    let worker = std::thread::Builder::new()
        .name("workspace-sync".into())
        .spawn(move || {
            sys::setresid(target.uid, target.gid)?;
            Ok(tree::mirror(copy.as_fd(), target.dir.as_fd()))
        })?;
    worker
        .join()
        .map_err(|_| io::Error::other("the sync thread panicked"))?
}

fn detach(attached: Option<uplink::Uplink>) {
    if let Some(uplink) = attached {
        uplink.detach();
    }
}

/// EOF without a message means execve succeeded.
fn read_report(report: OwnedFd) -> Result<(), Error> {
    let mut msg = Vec::new();
    std::fs::File::from(report)
        .read_to_end(&mut msg)
        .step(|| "reading the sandbox's setup report".into())?;
    let Some((&tag, text)) = msg.split_first() else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(text).into_owned();
    if tag == child::REPORT_EXEC {
        let (errno, program) = text.split_once(':').unwrap_or(("0", &text));
        return Err(Error::Exec {
            program: program.to_owned(),
            source: io::Error::from_raw_os_error(errno.parse().unwrap_or(0)),
        });
    }
    Err(Error::Child(text))
}

fn supervise(
    plan: &Plan,
    pidfd: OwnedFd,
    signals: OwnedFd,
    mut relay: Option<Relay>,
    mut egress: Option<&mut egress::Watch<'_>>,
    hooks: &mut dyn Hooks,
) -> Result<Outcome, Error> {
    let mut watching = true;
    let deadline = plan
        .limits
        .timeout
        .map(|t| Instant::now() + Duration::from_secs(u64::from(t.secs())));
    let mut timed_out = false;
    let mut terminations = 0;
    loop {
        let refresh_at = egress.as_ref().and_then(|e| e.refresh_at());
        let timeout_ms = match [deadline, refresh_at].into_iter().flatten().min() {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Rounded up: woken early, the loop would spin until then.
                i32::try_from(left.as_millis() + 1).unwrap_or(i32::MAX)
            }
            None => -1,
        };
        let watched = hooks
            .watched()
            .filter(|_| watching)
            .map_or(-1, |fd| fd.as_raw_fd());
        let mut fds = vec![
            pollin(pidfd.as_fd()),
            pollin(signals.as_fd()),
            libc::pollfd {
                fd: watched,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: egress.as_ref().map_or(-1, |e| e.denials_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        if let Some(relay) = &relay {
            fds.extend(relay.poll_fds());
        }
        let ready = match sys::poll(&mut fds, timeout_ms) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other.step(|| "waiting for the sandbox".into())?,
        };
        if ready == 0 && deadline.is_some_and(|d| Instant::now() >= d) && !timed_out {
            let secs = plan.limits.timeout.map_or(0, |t| t.secs());
            eprintln!("nucleus: timeout: killing the sandbox after {secs} s");
            timed_out = true;
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            continue;
        }
        if fds[1].revents & libc::POLLIN != 0 {
            let sig = sys::read_signal(signals.as_fd()).step(|| "reading a signal".into())?;
            terminations += handle_signal(sig, terminations, pidfd.as_fd(), relay.as_ref());
        }
        if fds[2].revents != 0 {
            match hooks.on_watched() {
                Control::Continue => {}
                Control::Signal(sig) => {
                    terminations += handle_signal(sig, terminations, pidfd.as_fd(), relay.as_ref());
                }
                Control::Kill => {
                    watching = false;
                    let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
                }
                Control::Resize(rows, cols) => {
                    if let Some(relay) = &relay {
                        relay.set_size((rows, cols));
                    }
                }
            }
        }
        if let Some(e) = egress.as_mut() {
            if fds[3].revents != 0 {
                e.report_denials();
            }
            if e.refresh_at().is_some_and(|t| Instant::now() >= t) {
                e.refresh();
            }
        }
        if let Some(r) = relay.as_mut() {
            r.pump(&fds[4..]);
        }
        if fds[0].revents & libc::POLLIN != 0 {
            // The last denials may still be queued.
            if let Some(e) = egress.as_mut() {
                e.report_denials();
            }
            break;
        }
    }
    if let Some(r) = relay.as_mut() {
        r.drain();
    }
    drop(relay);
    let status = match sys::wait_pidfd(pidfd.as_fd()).step(|| "reaping the sandbox".into())? {
        sys::WaitStatus::Exited(code) => ExitStatus::Code(code as u8),
        sys::WaitStatus::Signaled(sig) => ExitStatus::Signal(sig as u8),
    };
    Ok(Outcome { status, timed_out })
}

/// Passes a signal on. The workload is PID 1 of its namespace, where the
/// kernel drops signals it has no handler for; a second SIGINT or SIGTERM
/// therefore escalates to SIGKILL so the user can always stop it.
/// Returns 1 if `sig` counts as a termination request.
fn handle_signal(
    sig: libc::c_int,
    earlier: u32,
    pidfd: BorrowedFd<'_>,
    relay: Option<&Relay>,
) -> u32 {
    if sig == libc::SIGWINCH {
        if let Some(relay) = relay {
            relay.resize();
        }
        return 0;
    }
    let terminating = sig == libc::SIGINT || sig == libc::SIGTERM;
    let sent = if terminating && earlier > 0 {
        libc::SIGKILL
    } else {
        sig
    };
    // The sandbox may already be gone; the exit is reported by the pidfd.
    let _ = sys::pidfd_send_signal(pidfd, sent);
    u32::from(terminating)
}

fn pollin(fd: BorrowedFd<'_>) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }
}
