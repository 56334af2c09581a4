//! Terminals, sessions and descriptor passing.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::{check, check_int, owned};

/// A connected pair of AF_UNIX SOCK_SEQPACKET sockets, close-on-exec.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    let kind = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC;
    // SAFETY: `fds` has room for the two descriptors the kernel writes.
    check_int(unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) })?;
    // SAFETY: socketpair succeeded, so both descriptors are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

const FD_CMSG_SPACE: usize = 32;

/// A message header over `iov` (one byte) and `control`; the caller keeps
/// both alive while the header is in use.
fn fd_msghdr(iov: &mut libc::iovec, control: &mut [u8; FD_CMSG_SPACE]) -> libc::msghdr {
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len();
    msg
}

/// Sends one descriptor (SCM_RIGHTS) with a one-byte message.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    send_with_fds(sock, &[0], &[fd]).map(drop)
}

/// Sends `bytes` with `fds` attached (SCM_RIGHTS) in one sendmsg; returns
/// how many bytes went (the descriptors go with the first byte).
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let data_len = std::mem::size_of_val(raw.as_slice()) as u32;
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(data_len) } as usize;
    // 8-byte aligned, as control messages require.
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !raw.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: msg_control points at `control`, large enough for the
        // header and `raw`, so CMSG_FIRSTHDR is non-null and the data fits.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(data_len) as usize;
            std::ptr::copy_nonoverlapping(
                raw.as_ptr(),
                libc::CMSG_DATA(cmsg).cast::<RawFd>(),
                raw.len(),
            );
        }
    }
    // SAFETY: `msg` and everything it points to outlive the call; the
    // kernel only reads the iovec (sendmsg).
    let sent = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    check(sent as libc::c_long).map(|n| n as usize)
}

/// Receives one descriptor sent by [`send_fd`]; `None` if the peer closed
/// the socket without sending.
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u8; FD_CMSG_SPACE];
    let mut msg = fd_msghdr(&mut iov, &mut control);
    // SAFETY: `msg` describes buffers that outlive the call; received
    // descriptors are made close-on-exec.
    let n = check(
        unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) }
            as libc::c_long,
    )?;
    if n == 0 {
        return Ok(None);
    }
    // SAFETY: the kernel filled `control` up to msg_controllen; CMSG_FIRSTHDR
    // returns null when there is no control message.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    // SAFETY: a non-null cmsg points into `control`.
    if cmsg.is_null() || unsafe { (*cmsg).cmsg_type } != libc::SCM_RIGHTS {
        return Err(io::Error::from_raw_os_error(libc::EBADMSG));
    }
    // SAFETY: an SCM_RIGHTS message carries at least one descriptor, which
    // the kernel installed in our table and we now own.
    let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>()) };
    // SAFETY: see above: the descriptor is new and ours.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Opens a new pseudo-terminal pair on the devpts behind `/dev/ptmx`:
/// (master, slave). Called inside the sandbox, so the slave belongs to the
/// sandbox's own devpts instance and has a name there.
pub fn open_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: posix_openpt with constant flags returns a new descriptor or -1.
    let master =
        owned(
            unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) }
                as libc::c_long,
        )?;
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes a pointer to an int.
    check_int(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) })?;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER returns a new descriptor for the peer of this master,
    // without a path lookup, so it cannot be redirected.
    let slave = owned(
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) } as libc::c_long,
    )?;
    Ok((master, slave))
}

pub fn get_winsize(fd: BorrowedFd<'_>) -> io::Result<libc::winsize> {
    // SAFETY: winsize is plain data.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the buffer we pass.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) })?;
    Ok(ws)
}

pub fn set_winsize(fd: BorrowedFd<'_>, ws: &libc::winsize) -> io::Result<()> {
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer we pass.
    check_int(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws) }).map(drop)
}

pub fn tcgetattr(fd: BorrowedFd<'_>) -> io::Result<libc::termios> {
    // SAFETY: termios is plain data.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a writable termios.
    check_int(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) })?;
    Ok(t)
}

pub fn tcsetattr(fd: BorrowedFd<'_>, t: &libc::termios) -> io::Result<()> {
    // SAFETY: `t` is a valid termios.
    check_int(unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSADRAIN, t) }).map(drop)
}

pub fn make_raw(t: &mut libc::termios) {
    // SAFETY: cfmakeraw only edits the struct we pass.
    unsafe { libc::cfmakeraw(t) };
}

pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor number.
    unsafe { libc::isatty(fd) == 1 }
}

/// Makes the calling process a session leader with `tty` as its
/// controlling terminal.
pub fn setsid_with_ctty(tty: Option<BorrowedFd<'_>>) -> io::Result<()> {
    // SAFETY: no arguments.
    check_int(unsafe { libc::setsid() })?;
    if let Some(tty) = tty {
        // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal).
        check_int(unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSCTTY, 0) })?;
    }
    Ok(())
}

pub fn dup2(from: BorrowedFd<'_>, to: RawFd) -> io::Result<()> {
    // SAFETY: integer arguments; `to` is one of the stdio numbers, which the
    // process owns by convention.
    check_int(unsafe { libc::dup2(from.as_raw_fd(), to) }).map(drop)
}

/// A raw descriptor number as a borrowed fd, for stdio.
pub fn stdio(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: 0, 1 and 2 stay open for the life of the process by convention.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// One byte on a socket: a step in a handshake between the executor and
/// the sandbox.
pub fn send_byte(sock: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a one-byte buffer that outlives the call.
    check(unsafe { libc::send(sock.as_raw_fd(), [1u8].as_ptr().cast(), 1, 0) } as libc::c_long)
        .map(drop)
}

/// Waits for `send_byte`; false if the peer closed the socket instead.
pub fn recv_byte(sock: BorrowedFd<'_>) -> io::Result<bool> {
    let mut byte = [0u8; 1];
    // SAFETY: a one-byte writable buffer that outlives the call.
    let n = check(
        unsafe { libc::recv(sock.as_raw_fd(), byte.as_mut_ptr().cast(), 1, 0) } as libc::c_long,
    )?;
    Ok(n == 1)
}
