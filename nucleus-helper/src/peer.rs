//! Who is asking: the kernel's word, never the payload's.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys;

/// The caller of one connection.
#[derive(Debug)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: libc::pid_t,
    /// Pins `pid`: while we hold it the number cannot be reused, so a
    /// polkit check by pid asks about this process and no other.
    pub pidfd: OwnedFd,
}

impl Peer {
    /// SO_PEERCRED for the ids, and the peer's pidfd: SO_PEERPIDFD where
    /// the kernel has it (6.5+), else pidfd_open of the recorded pid,
    /// checked to still be that user's live process.
    pub fn of(sock: BorrowedFd<'_>) -> io::Result<Peer> {
        let cred = sys::peer_cred(sock)?;
        let pidfd = match sys::peer_pidfd(sock) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {
                let fd = sys::pidfd_open(cred.pid)?;
                if !same_owner(cred.pid, cred.uid) {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "the peer process is gone or changed owner",
                    ));
                }
                fd
            }
            Err(e) => return Err(e),
        };
        if !sys::pidfd_alive(pidfd.as_fd()) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the peer process has exited",
            ));
        }
        Ok(Peer {
            uid: cred.uid,
            gid: cred.gid,
            pid: cred.pid,
            pidfd,
        })
    }
}

/// The real uid of `pid`, read after its pidfd was taken: if the pid had
/// been recycled before that, the new process would have to belong to the
/// same user to pass.
fn same_owner(pid: libc::pid_t, uid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|u| u.parse::<u32>().ok())
        })
        == Some(uid)
}
