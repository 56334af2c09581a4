//! Seccomp user notifications: the executor takes the sandbox's listener
//! and answers each system call sent to it, with "continue" in trace
//! mode, with an errno for the violations report.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::check_int;

/// pidfd_getfd(2): a copy of descriptor `fd` of the process behind `pidfd`.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only; a new descriptor comes back.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0u32) };
    let fd = check_int(ret as libc::c_int)?;
    // SAFETY: pidfd_getfd returned a new descriptor, which we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One system call waiting for the listener's answer.
pub struct Notification {
    pub id: u64,
    pub call: crate::bpf::Call,
}

/// The next notification (blocks until one comes).
pub fn notif_recv(listener: BorrowedFd<'_>) -> io::Result<Notification> {
    // SAFETY: seccomp_notif is plain data; the kernel wants it zeroed.
    let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: `notif` is a valid, writable seccomp_notif.
    check_int(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut notif as *mut libc::seccomp_notif,
        )
    })?;
    let data = notif.data;
    Ok(Notification {
        id: notif.id,
        call: crate::bpf::Call {
            nr: data.nr,
            arch: data.arch,
            instruction_pointer: data.instruction_pointer,
            args: data.args,
        },
    })
}

/// Answers notification `id` without running the system call: it
/// returns `-errno` when `errno` is not 0, else 0.
pub fn notif_answer(listener: BorrowedFd<'_>, id: u64, errno: i32) -> io::Result<()> {
    notif_send(
        listener,
        libc::seccomp_notif_resp {
            id,
            val: 0,
            error: -errno,
            flags: 0,
        },
    )
}

/// Lets the system call of notification `id` run as if unfiltered.
pub fn notif_continue(listener: BorrowedFd<'_>, id: u64) -> io::Result<()> {
    notif_send(
        listener,
        libc::seccomp_notif_resp {
            id,
            val: 0,
            error: 0,
            flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        },
    )
}

fn notif_send(listener: BorrowedFd<'_>, mut resp: libc::seccomp_notif_resp) -> io::Result<()> {
    // SAFETY: `resp` is a valid seccomp_notif_resp.
    check_int(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp as *mut libc::seccomp_notif_resp,
        )
    })
    .map(drop)
}
