//! Signals an executor passes on to its sandbox, read from a signalfd so
//! none is lost and no handler runs.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::sys;

/// The signals a front end forwards to the workload.
pub const FORWARDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

pub struct SignalFd {
    fd: OwnedFd,
    mask: libc::sigset_t,
}

impl std::fmt::Debug for SignalFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SignalFd").field(&self.fd).finish()
    }
}

impl SignalFd {
    /// Blocks `signals` for this thread and reads them from a descriptor.
    pub fn block(signals: &[libc::c_int]) -> io::Result<SignalFd> {
        let mask = sys::signal_set(signals);
        sys::sigprocmask(libc::SIG_BLOCK, &mask)?;
        Ok(SignalFd {
            fd: sys::signalfd(&mask)?,
            mask,
        })
    }

    /// Unblocks the signals and closes the descriptor: for a forked child,
    /// whose own children must not inherit a blocked mask through exec.
    pub fn release(self) -> io::Result<()> {
        sys::sigprocmask(libc::SIG_UNBLOCK, &self.mask)
    }

    pub fn read(&self) -> io::Result<libc::c_int> {
        sys::read_signal(self.fd.as_fd())
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Waits until one of `fds` is readable (or closed); returns which.
pub fn wait_readable(fds: &[BorrowedFd<'_>]) -> io::Result<Vec<bool>> {
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        match sys::poll(&mut polled, -1) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(polled.iter().map(|p| p.revents != 0).collect()),
        }
    }
}

/// Sends `bytes` with `fds` attached (SCM_RIGHTS) on a Unix socket.
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    sys::send_with_fds(sock, bytes, fds)
}
