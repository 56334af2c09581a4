//! Every `unsafe` call of the suite, each behind a small safe wrapper.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub fn geteuid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

pub fn getuid() -> u32 {
    // SAFETY: as for geteuid.
    unsafe { libc::getuid() }
}

pub fn getgid() -> u32 {
    // SAFETY: as for geteuid.
    unsafe { libc::getgid() }
}

/// Makes this process the reaper of its orphaned descendants, so a sandbox
/// that outlives its nucleus shows up as our child instead of vanishing
/// into the host's init.
pub fn become_child_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument and
    // touches no memory of ours.
    let ret = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) };
    check(libc::c_long::from(ret)).map(drop)
}

/// Registers `f` to run when the process exits normally.
pub fn at_exit(f: extern "C" fn()) {
    // SAFETY: `f` is a plain function with the signature atexit expects; it
    // stays valid for the life of the process.
    unsafe { libc::atexit(f) };
}

pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill takes two integers and touches no memory of ours.
    check(libc::c_long::from(unsafe { libc::kill(pid, sig) })).map(drop)
}

/// A pidfd for `pid`, which becomes readable when the process exits.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and a flags word and returns a new
    // descriptor, which we own from here on.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `fd` is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether `fd` became readable within `timeout`.
pub fn readable_within(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd and the count passed is 1.
        let ret = unsafe { libc::poll(&mut pfd, 1, ms) };
        match check(libc::c_long::from(ret)) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Reaps `pid` if it is a child of ours that has exited. `Ok(true)` once
/// it is gone (reaped now, or not our child at all).
pub fn reap_if_exited(pid: i32) -> io::Result<bool> {
    let mut status = 0;
    // SAFETY: `status` is a valid int for waitpid to write.
    let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    match check(libc::c_long::from(ret)) {
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Makes the spawned process inherit `fd` as descriptor `target`, without
/// close-on-exec: a descriptor "leaked" from the caller into nucleus.
pub fn leak_fd_into(cmd: &mut Command, fd: RawFd, target: RawFd) {
    let dup = move || {
        // SAFETY: dup2 is async-signal-safe and only manipulates the
        // descriptor table of the forked child; `fd` is open there because
        // the parent keeps it open until spawn returns.
        let ret = unsafe { libc::dup2(fd, target) };
        if ret == target {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY: the closure runs between fork and exec and calls only dup2
    // (async-signal-safe): no allocation, no locks.
    unsafe { cmd.pre_exec(dup) };
}

/// mkfifo(3), in-process: a `mkfifo` child could lose its exit status to
/// the harness, which reaps orphans as the test process's subreaper.
pub fn mkfifo(path: &std::path::Path, mode: libc::mode_t) -> io::Result<()> {
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is NUL-terminated and outlives the call.
    if unsafe { libc::mkfifo(c.as_ptr(), mode) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
