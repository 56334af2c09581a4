//! Signals an executor passes on to its sandbox, read from a signalfd so
//! none is lost and no handler runs.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::sys;

/// The signals a front end forwards to the workload.
pub const FORWARDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

#[derive(Debug)]
pub struct SignalFd(OwnedFd);

impl SignalFd {
    /// Blocks `signals` for this thread and reads them from a descriptor.
    pub fn block(signals: &[libc::c_int]) -> io::Result<SignalFd> {
        let mask = sys::signal_set(signals);
        sys::sigprocmask(libc::SIG_BLOCK, &mask)?;
        Ok(SignalFd(sys::signalfd(&mask)?))
    }

    pub fn read(&self) -> io::Result<libc::c_int> {
        sys::read_signal(self.0.as_fd())
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
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
