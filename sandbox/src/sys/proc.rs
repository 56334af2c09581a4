//! Process creation and reaping for the sandbox's mini-init.

use std::io;

use super::{check_int, WaitStatus};

/// fork(2). Some(pid) in the parent, None in the child. The caller must be
/// single-threaded (the child only prepares an execve).
pub fn fork() -> io::Result<Option<libc::pid_t>> {
    // SAFETY: the sandbox process is single-threaded here (its network
    // thread has been joined); the child only makes system calls until it
    // execs or exits.
    let pid = check_int(unsafe { libc::fork() })?;
    Ok((pid != 0).then_some(pid))
}

/// Reaps one exited child without waiting: its pid and status, or None
/// when no child has exited (or none is left).
pub fn reap_any() -> io::Result<Option<(libc::pid_t, WaitStatus)>> {
    // SAFETY: siginfo_t is a plain C struct for which all-zero is valid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable siginfo_t.
    let ret = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG) };
    match check_int(ret) {
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return Ok(None),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    // SAFETY: waitid succeeded with WEXITED; si_pid is 0 if nothing exited.
    let pid = unsafe { info.si_pid() };
    if pid == 0 {
        return Ok(None);
    }
    // SAFETY: as above, a child was reaped, so si_status is set.
    let status = unsafe { info.si_status() };
    Ok(Some((
        pid,
        if info.si_code == libc::CLD_EXITED {
            WaitStatus::Exited(status)
        } else {
            WaitStatus::Signaled(status)
        },
    )))
}

/// Every signal (the kernel ignores SIGKILL and SIGSTOP in a mask).
pub fn full_signal_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigfillset initializes it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigfillset(&mut set) };
    set
}

/// kill(2) to one process.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check_int(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// Closes a descriptor this process does not own as an OwnedFd (one a
/// forked child no longer needs); errors are meaningless here.
pub fn close(fd: std::os::fd::RawFd) {
    // SAFETY: closing a descriptor number has no memory effects; the
    // caller guarantees nothing else uses it afterwards.
    unsafe { libc::close(fd) };
}
