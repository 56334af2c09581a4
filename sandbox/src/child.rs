//! The sandbox side of the fork: runs as PID 1 of the new namespaces, sets
//! everything up in a fixed order, and execs the workload.
//!
//! The order is the security argument, so it lives in one function:
//! 1. wait for the parent to write the id maps (until then we have no ids);
//! 2. network namespace (in a thread, see `net`), hostname, mounts and
//!    pivot_root: these need CAP_SYS_ADMIN and CAP_NET_ADMIN in the new
//!    user namespace;
//! 3. cwd (checked to be inside the new root) and terminal (the uid/gid
//!    switch comes first of all, as soon as the maps exist);
//! 4. capabilities dropped from every set: from here on nothing can undo
//!    the mounts;
//! 5. no_new_privs: required by Landlock and seccomp for unprivileged use,
//!    and stops setuid files from granting anything;
//! 6. Landlock, whose rule paths must still be opened;
//! 7. every inherited descriptor closed except the error pipe (close-on-exec);
//! 8. seccomp last, so the filter does not have to allow the setup's own
//!    system calls (mount, landlock_*, prctl ...), then execve.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};

use protocol::{NetworkMode, Plan, SeccompMode, SockFilter};

use crate::error::Error;
use crate::inputs::Inputs;
use crate::{caps, denials, exec, init, landlock, mountaudit, mounts, net, rootfs, sys, trace};

/// Tags of the messages on the error pipe, child to parent.
pub(crate) const REPORT_SETUP: u8 = b'S';
pub(crate) const REPORT_EXEC: u8 = b'X';

pub(crate) struct Setup<'a> {
    pub plan: &'a Plan,
    /// Read end of the go-ahead pipe: one byte once the maps are written,
    /// EOF if the parent died.
    pub go: OwnedFd,
    /// Write end of the error pipe; close-on-exec, so a successful execve
    /// closes it and the parent reads EOF.
    pub report: OwnedFd,
    /// The socket on which descriptors go to the parent: the copied
    /// workspace (copy-in-out), then the terminal's master (`-t`).
    pub control: Option<OwnedFd>,
    pub inputs: Inputs,
    /// `SeccompMode::Report`: the plan's program as installed for the
    /// report (`denials::program`), made before the fork.
    pub report_program: Option<Vec<SockFilter>>,
}

/// Never returns: execs the workload or exits with status 125/126/127
/// after reporting why.
pub(crate) fn run(setup: Setup<'_>) -> ! {
    let mut report = std::fs::File::from(setup.report);
    let Err(failure) = setup_and_exec(
        setup.plan,
        setup.go,
        setup.control,
        setup.inputs,
        setup.report_program,
        report.as_raw_fd(),
    );
    let (tag, code, text) = match failure {
        Error::Exec { source, program } => {
            let code = if source.raw_os_error() == Some(libc::ENOENT) {
                127
            } else {
                126
            };
            let errno = source.raw_os_error().unwrap_or(0);
            (REPORT_EXEC, code, format!("{errno}:{program}"))
        }
        other => (REPORT_SETUP, 125, other.to_string()),
    };
    let mut msg = vec![tag];
    msg.extend_from_slice(text.as_bytes());
    // Nothing else can be done if the parent is gone.
    let _ = report.write_all(&msg);
    sys::exit_now(code)
}

fn setup_and_exec(
    plan: &Plan,
    go: OwnedFd,
    control: Option<OwnedFd>,
    inputs: Inputs,
    report_program: Option<Vec<SockFilter>>,
    report_fd: i32,
) -> Result<Infallible, Error> {
    use crate::error::Context;

    // Signal state is inherited across fork and exec: start clean.
    sys::reset_signal_dispositions();
    sys::sigprocmask(libc::SIG_SETMASK, &sys::signal_set(&[]))
        .step(|| "resetting the signal mask".into())?;
    // The sandbox dies with its parent, even if the parent is SIGKILLed.
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
        .step(|| "setting the parent-death signal".into())?;
    // Needs only the capabilities the new user namespace already grants,
    // not the id maps: start it while the parent writes them.
    let network = match &plan.network {
        NetworkMode::None => Some(net::create_in_background(false)?),
        NetworkMode::Bridge(bridge) => Some(net::create_in_background(reports_denials(bridge))?),
        NetworkMode::Host => None,
    };
    let mut byte = [0u8; 1];
    let n = std::fs::File::from(go)
        .read(&mut byte)
        .step(|| "waiting for the id maps".into())?;
    if n == 0 {
        // The parent exited before writing the maps; nobody is waiting for us.
        sys::exit_now(125);
    }

    // Become the workload's ids now that they are mapped: files the setup
    // creates must belong to them, and an executor running as someone
    // else (the privileged helper) has an unmapped id until here.
    if plan.ids.uid != 0 {
        // Leaving uid 0 (`--user` under --userns subids) would clear the
        // capabilities the rest of the setup needs; caps.rs drops them all,
        // and sets the securebits anew, before exec.
        sys::prctl(
            libc::PR_SET_SECUREBITS,
            libc::SECBIT_NO_SETUID_FIXUP as libc::c_ulong,
        )
        .step(|| "keeping capabilities across the switch of ids".into())?;
    }
    if !plan.ids.groups.is_empty() {
        sys::setgroups(&plan.ids.groups).step(|| {
            format!(
                "setting the supplementary groups {:?} (--additional-group needs --userns subids, or root)",
                plan.ids.groups
            )
        })?;
    }
    sys::setresid(plan.ids.uid, plan.ids.gid)
        .step(|| format!("switching to uid {} gid {}", plan.ids.uid, plan.ids.gid))?;
    sys::sethostname(plan.hostname.as_str()).step(|| "setting the hostname".into())?;
    let steps = mounts::steps(plan);
    let mut inputs = inputs;
    let stdio = std::mem::take(&mut inputs.stdio);
    let mut root = rootfs::NewRoot::begin(&plan.root, &steps, inputs)?;
    // sysfs shows the mounting thread's network namespace: join it first.
    let (before_sysfs, rest) = steps.split_at(
        steps
            .iter()
            .position(|s| *s == mounts::Step::Sysfs)
            .unwrap_or(steps.len()),
    );
    root.apply(before_sysfs)?;
    let denials = match network {
        Some(network) => network.join()?,
        None => None,
    };
    if let (NetworkMode::Bridge(_), Some(control)) = (&plan.network, &control) {
        // In the namespace now: the executor attaches it to the bridge,
        // through this descriptor (it may not open our /proc entries).
        let netns = std::fs::File::open("/proc/thread-self/ns/net")
            .step(|| "opening the network namespace".into())?;
        sys::send_fd(control.as_fd(), netns.as_fd()).step(|| "asking for the bridge".into())?;
        drop(netns);
        if let Some(denials) = denials {
            sys::send_fd(control.as_fd(), denials.as_fd())
                .step(|| "handing over the log of denied packets".into())?;
        }
        if !sys::recv_byte(control.as_fd()).step(|| "waiting for the bridge".into())? {
            sys::exit_now(125);
        }
    }
    root.apply(rest)?;
    if let (Some(dir), Some(control)) = (root.take_exported(), &control) {
        sys::send_fd(control.as_fd(), dir.as_fd())
            .step(|| "handing the workspace copy to nucleus".into())?;
    }
    if root.enter(plan.security.allow_chroot_fallback)? == rootfs::Confinement::Chroot {
        eprintln!(
            "nucleus: warning: pivot_root failed; confined with chroot (--allow-chroot-fallback)"
        );
    }

    let cwd = plan.process.cwd.as_str();
    std::env::set_current_dir(cwd).step(|| format!("changing to working directory {cwd}"))?;
    // A descriptor leaked from the host could make the cwd a host directory
    // (CVE-2024-21626); getcwd reports such a directory as unreachable.
    let actual = std::env::current_dir().step(|| "reading the working directory".into())?;
    if actual.as_os_str() != cwd {
        return Err(Error::Setup {
            step: format!(
                "working directory {cwd} resolved outside the sandbox root ({})",
                actual.display()
            ),
            source: std::io::Error::from_raw_os_error(libc::EXDEV),
        });
    }
    if plan.hardening.audit_mounts {
        mountaudit::verify(plan, &steps)?;
    }
    attach_stdio(plan.process.tty.then_some(control).flatten(), stdio)?;

    let prepared = exec::prepare(&plan.process).map_err(|source| Error::Exec {
        program: plan.process.argv.program().to_string(),
        source,
    })?;

    caps::apply(&plan.security.capabilities)?;
    sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).step(|| "setting no_new_privs".into())?;
    landlock::restrict_self(&plan.security.landlock, plan.security.allow_degraded)?;
    let report_fd = report_fd as u32;
    sys::close_range(3, report_fd - 1).step(|| "closing inherited descriptors".into())?;
    sys::close_range(report_fd + 1, u32::MAX).step(|| "closing inherited descriptors".into())?;
    match plan.security.seccomp_mode {
        SeccompMode::Enforce => sys::seccomp_install(
            plan.security.seccomp.instructions(),
            plan.security.log_denied,
        )
        .step(|| "installing the seccomp filter".into())?,
        SeccompMode::Trace => {
            // Left open for the executor to take (pidfd_getfd); execve's
            // close-on-exec closes this copy.
            let listener = sys::seccomp_listener(&trace::program(), false)
                .step(|| "installing the seccomp trace filter".into())?;
            let _ = listener.into_raw_fd();
        }
        SeccompMode::Report => {
            let program = report_program.ok_or_else(|| Error::Setup {
                step: "--violations: no program for the report".into(),
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            })?;
            let listener = sys::seccomp_listener(&program, plan.security.log_denied)
                .step(|| "installing the seccomp filter with its listener".into())?;
            sys::seccomp_handover(denials::HANDOVER)
                .step(|| "handing the seccomp listener over".into())?;
            // Closed before the mini-init can inherit it: whoever holds
            // the listener decides the denied calls.
            sys::close_checked(listener).step(|| "closing the seccomp listener".into())?;
        }
    }
    if plan.process.init {
        // Last: the init lives under every restriction the workload has.
        init::split(report_fd as std::os::fd::RawFd)?;
    }

    let source = sys::execve(&prepared.program, &prepared.argv, &prepared.envp);
    Err(Error::Exec {
        program: plan.process.argv.program().to_string(),
        source,
    })
}

/// A new session always: the workload must not share the caller's
/// controlling terminal (TIOCSTI and job-control signals reach through it).
/// With a console socket, a pty is opened in the sandbox's own devpts (so
/// the workload's terminal has a name there), its master goes to the
/// parent, and the slave becomes the controlling terminal and stdio.
fn attach_stdio(console: Option<OwnedFd>, stdio: Vec<OwnedFd>) -> Result<(), Error> {
    use crate::error::Context;

    let Some(console) = console else {
        for (fd, target) in stdio.iter().zip(0..3) {
            sys::dup2(fd.as_fd(), target).step(|| "attaching the caller's stdio".into())?;
        }
        return sys::setsid_with_ctty(None).step(|| "starting a new session".into());
    };
    let (master, slave) = sys::open_pty().step(|| "opening the sandbox's terminal".into())?;
    sys::send_fd(console.as_fd(), master.as_fd())
        .step(|| "sending the terminal to nucleus".into())?;
    drop((master, console));
    sys::setsid_with_ctty(Some(slave.as_fd())).step(|| "starting a new session".into())?;
    for fd in 0..3 {
        sys::dup2(slave.as_fd(), fd).step(|| "attaching the terminal".into())?;
    }
    Ok(())
}

/// Whether the sandbox opens the log of its denied packets for the
/// executor's egress report.
pub fn reports_denials(bridge: &protocol::Bridge) -> bool {
    bridge
        .egress
        .as_ref()
        .is_some_and(|e| e.report != protocol::EgressReport::Off)
}
