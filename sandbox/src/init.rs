//! The mini-init (production mode, `--init`): PID 1 of the sandbox forks
//! the workload and stays behind, under the same restrictions, to reap
//! every process re-parented to it (the kernel makes PID 1 the parent of
//! orphans; a workload that never waits for them fills the table with
//! zombies) and to pass signals on (PID 1 gets only the signals it
//! handles, so a workload as PID 1 ignores a plain SIGTERM). It exits with
//! the workload's status, 128+N when signal N ended it.

use std::os::fd::{AsFd, RawFd};

use crate::error::{Context, Error};
use crate::sys;

/// Splits the sandbox in two: returns in the child, which goes on to exec
/// the workload; never returns in PID 1, which becomes the init.
/// `report_fd` is the error pipe: the init closes its copy, so the
/// executor still sees it close when the workload's execve succeeds.
pub fn split(report_fd: RawFd) -> Result<(), Error> {
    // Blocked before the fork so no signal is lost: the init reads them
    // from a signalfd, the child restores an empty mask.
    let all = sys::full_signal_set();
    sys::sigprocmask(libc::SIG_SETMASK, &all).step(|| "blocking signals for the init".into())?;
    let Some(workload) = sys::fork().step(|| "starting the workload under the init".into())? else {
        sys::sigprocmask(libc::SIG_SETMASK, &sys::signal_set(&[]))
            .step(|| "resetting the signal mask".into())?;
        return Ok(());
    };
    sys::close(report_fd);
    let code = supervise(workload).unwrap_or(125);
    sys::exit_now(code)
}

fn supervise(workload: libc::pid_t) -> std::io::Result<libc::c_int> {
    let signals = sys::signalfd(&sys::full_signal_set())?;
    loop {
        let sig = sys::read_signal(signals.as_fd())?;
        if sig != libc::SIGCHLD {
            // The workload may be gone already; its exit comes as SIGCHLD.
            let _ = sys::kill(workload, sig);
            continue;
        }
        while let Some((pid, status)) = sys::reap_any()? {
            if pid == workload {
                return Ok(match status {
                    sys::WaitStatus::Exited(code) => code,
                    sys::WaitStatus::Signaled(sig) => 128 + sig,
                });
            }
        }
    }
}
