//! Raw netlink sockets: open and bind, send to the kernel, receive without
//! blocking. The messages themselves are built and parsed by safe code
//! (`crate::nflog`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::{check_int, owned};

/// The kernel's end of every netlink conversation.
fn kernel_address() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain data (its padding field is private, so
    // it cannot be built field by field); all-zero is port 0, no groups.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr
}

const ADDR_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;

/// A close-on-exec raw netlink socket for `protocol` (e.g.
/// NETLINK_NETFILTER), bound to a port id the kernel picks, in the network
/// namespace of the calling thread. The namespace is fixed at creation:
/// moving the thread later does not move the socket.
pub fn netlink_socket(protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with integer arguments.
    let fd = owned(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol,
        )
    } as libc::c_long)?;
    // Port id 0 asks the kernel for a unique one, so two readers in one
    // process cannot collide.
    let addr = kernel_address();
    // SAFETY: `addr` is a valid sockaddr_nl of the length passed.
    check_int(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            ADDR_LEN,
        )
    })?;
    Ok(fd)
}

/// Sends `msg` to the kernel as one datagram.
pub fn netlink_send(fd: BorrowedFd<'_>, msg: &[u8]) -> io::Result<()> {
    let addr = kernel_address();
    loop {
        // SAFETY: the pointers and lengths describe `msg` and `addr`, which
        // outlive the call; the kernel only reads them.
        let ret = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                ADDR_LEN,
            )
        };
        match usize::try_from(ret) {
            Ok(n) if n == msg.len() => return Ok(()),
            // A netlink datagram goes whole or not at all.
            Ok(_) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Err(_) => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

/// Receives one queued datagram into `buf` without blocking, whatever the
/// descriptor's mode: `WouldBlock` when none is queued. Returns its length;
/// the part of a datagram longer than `buf` is lost.
pub fn recv_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: the pointer and length describe `buf`, which the kernel
        // writes at most `buf.len()` bytes into.
        let ret = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match usize::try_from(ret) {
            Ok(n) => return Ok(n),
            Err(_) => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}
