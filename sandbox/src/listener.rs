//! The executor's end of a sandbox's seccomp user notifications (trace
//! mode, the violations report): taking the listener out of the sandbox
//! and a thread answering what comes to it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Context, Error};
use crate::sys::{self, Notification};

/// How long the sandbox may take from the fork to its filter.
const GRAB_TIMEOUT: Duration = Duration::from_secs(30);

/// The sandbox's seccomp listener in the executor's hands (its only copy
/// once the sandbox closes its own), with the sandbox it belongs to.
pub struct Listener {
    fd: OwnedFd,
    /// A pidfd of the sandbox: killed if the listener stops answering
    /// while the sandbox lives. A closed listener detaches from its
    /// filter; the workload could then attach a listener of its own to a
    /// filter of its own, whose notifications outrank ours (the newest
    /// filter's wins) and could be answered with "continue".
    sandbox: OwnedFd,
}

/// Takes the sandbox's listener once its filter is installed: its lowest
/// free descriptor (3, or 4 when the error pipe is 3) once it is a
/// seccomp listener. The sandbox cannot send it over: its next system
/// call may already wait for an answer. `exited` says whether the
/// sandbox died meanwhile.
pub fn grab(pidfd: BorrowedFd<'_>, exited: impl Fn() -> bool) -> Result<Listener, Error> {
    let deadline = Instant::now() + GRAB_TIMEOUT;
    while Instant::now() < deadline && !exited() {
        for fd in [3, 4] {
            let Ok(copy) = sys::pidfd_getfd(pidfd, fd) else {
                continue;
            };
            let link = std::fs::read_link(format!("/proc/self/fd/{}", copy.as_raw_fd()));
            if link.is_ok_and(|l| l.as_os_str() == "anon_inode:seccomp notify") {
                let sandbox = pidfd
                    .try_clone_to_owned()
                    .step(|| "keeping a pidfd for the seccomp listener".into())?;
                return Ok(Listener { fd: copy, sandbox });
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(Error::Setup {
        step: "taking the sandbox's seccomp listener".into(),
        source: std::io::Error::from_raw_os_error(libc::ETIMEDOUT),
    })
}

/// A thread giving each notification to `answer` (which must answer it)
/// until no process uses the filter; it returns the state `answer` kept.
pub fn serve<T: Send + 'static>(
    listener: Listener,
    name: &str,
    mut state: T,
    mut answer: impl FnMut(&mut T, BorrowedFd<'_>, Notification) + Send + 'static,
) -> Result<JoinHandle<T>, Error> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let Listener { fd, sandbox } = listener;
            let hung_up = loop {
                let mut fds = [libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }];
                match sys::poll(&mut fds, -1) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break false,
                    Ok(_) => {}
                }
                if fds[0].revents & libc::POLLIN == 0 {
                    // POLLHUP: every task under the filter is gone.
                    break fds[0].revents & libc::POLLHUP != 0;
                }
                // ENOENT: the caller died between the two calls.
                if let Ok(n) = sys::notif_recv(fd.as_fd()) {
                    answer(&mut state, fd.as_fd(), n);
                }
            };
            if !hung_up {
                let _ = sys::pidfd_send_signal(sandbox.as_fd(), libc::SIGKILL);
            }
            state
        })
        .step(|| format!("starting the {name} thread"))
}
