//! Sockets and child-process settings for the network backends.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use super::{check_int, owned};

/// A socket bound to `ip:port` (TCP or UDP) but never listening: it holds
/// the host port for a published sandbox port, so another program (or
/// sandbox) asking for it gets EADDRINUSE, while the packets themselves
/// are redirected before they could reach it.
pub fn reserve_port(tcp: bool, ip: Ipv4Addr, port: u16) -> io::Result<OwnedFd> {
    let kind = if tcp {
        libc::SOCK_STREAM
    } else {
        libc::SOCK_DGRAM
    };
    // SAFETY: socket(2) with constant arguments.
    let sock = owned(
        unsafe { libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0) } as libc::c_long,
    )?;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a valid sockaddr_in and the length says so.
    check_int(unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    Ok(sock)
}

/// Makes the command's process receive SIGKILL when the thread that
/// started it ends: a NAT helper must not outlive an executor that was
/// killed, holding the sandbox's network alive.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and makes one
    // async-signal-safe system call.
    unsafe {
        cmd.pre_exec(|| {
            check_int(libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
            ))
            .map(drop)
        });
    }
}

/// An anonymous in-memory file, for a helper tool's messages.
pub fn memfd(name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid C string; the flags are constants.
    let fd = check_int(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: memfd_create returned a new descriptor, which we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
