//! The helper's raw system calls: the only `unsafe` in the crate.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The first descriptor systemd passes (sd_listen_fds(3)).
pub const LISTEN_FDS_START: RawFd = 3;

/// Closes every descriptor from `first` on.
pub fn close_from(first: RawFd) -> io::Result<()> {
    // SAFETY: integer arguments; no Rust object owns these descriptors yet
    // (this runs before anything opens one).
    check(unsafe { libc::syscall(libc::SYS_close_range, first as u32, u32::MAX, 0u32) }).map(drop)
}

/// Not dumpable (no ptrace by the caller's uid, no /proc/self/mem), no core files.
pub fn no_dumps() -> io::Result<()> {
    let zero: libc::c_ulong = 0;
    // SAFETY: PR_SET_DUMPABLE takes integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, zero, zero, zero, zero) } as libc::c_long)?;
    let limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit.
    check(unsafe { libc::setrlimit(libc::RLIMIT_CORE, &limit) } as libc::c_long).map(drop)
}

pub fn getpid() -> libc::pid_t {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::getpid() }
}

/// The descriptor systemd passed, taken into ownership once.
pub fn take_listen_fd() -> OwnedFd {
    // SAFETY: the caller checked LISTEN_FDS/LISTEN_PID: descriptor 3 was
    // passed to this process and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) }
}

/// The peer's credentials as the kernel recorded them at connect time.
pub fn peer_cred(sock: BorrowedFd<'_>) -> io::Result<libc::ucred> {
    // SAFETY: ucred is plain data.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` describe a writable buffer of the right size.
    check(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    } as libc::c_long)?;
    Ok(cred)
}

/// SO_PEERPIDFD (Linux 6.5): a pidfd of the peer as of connect time.
const SO_PEERPIDFD: libc::c_int = 77;

pub fn peer_pidfd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut fd: RawFd = -1;
    let mut len = std::mem::size_of::<RawFd>() as libc::socklen_t;
    // SAFETY: `fd` and `len` describe a writable int.
    check(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&mut fd as *mut RawFd).cast(),
            &mut len,
        )
    } as libc::c_long)?;
    // SAFETY: the kernel installed a new descriptor for us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments; the result is a new descriptor.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) })?;
    // SAFETY: pidfd_open returned a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Whether the process behind `pidfd` still exists.
pub fn pidfd_alive(pidfd: BorrowedFd<'_>) -> bool {
    // SAFETY: signal 0 only checks existence and permission.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        ) == 0
    }
}

pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data; the kernel fills it on success.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } as libc::c_long)?;
    Ok(st)
}

/// Room for this many descriptors in one control message.
const MAX_FDS_PER_READ: usize = 253;

/// recvmsg(2) into `buf`, collecting the descriptors that came with the
/// bytes. Returns (bytes read, descriptors, whether descriptors were
/// dropped for lack of room). Descriptors arrive close-on-exec.
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>, bool)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // 8-byte aligned room for MAX_FDS_PER_READ descriptors plus the header.
    let mut control = vec![0u64; (MAX_FDS_PER_READ * 4 + 64) / 8];
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() * 8;
    // SAFETY: `msg` describes buffers that outlive the call.
    let n = check(
        unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) }
            as libc::c_long,
    )? as usize;
    let mut fds = Vec::new();
    // SAFETY: the kernel wrote msg_controllen bytes of well-formed control
    // messages into `control`; the CMSG_* macros walk them within bounds.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    // Each received descriptor is new and ours.
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n, fds, msg.msg_flags & libc::MSG_CTRUNC != 0))
}

/// Whether `fd` was opened with O_PATH (names a file, grants no access).
pub fn is_o_path(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: F_GETFL takes no argument and only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    flags < 0 || flags & libc::O_PATH != 0
}

/// Whether `fd` was opened for writing (and is not O_PATH): the egress
/// report is only ever written through the caller's own descriptor.
pub fn is_writable(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: F_GETFL takes no argument and only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    flags >= 0
        && flags & libc::O_PATH == 0
        && matches!(flags & libc::O_ACCMODE, libc::O_WRONLY | libc::O_RDWR)
}

pub enum Forked {
    Child,
    Parent(libc::pid_t),
}

/// fork(2). The caller must be single-threaded.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the helper is single-threaded when it forks (checked by its
    // callers: D-Bus threads only start after the last fork).
    match check(unsafe { libc::fork() } as libc::c_long)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as libc::pid_t)),
    }
}

/// Moves the calling (single-threaded) process into the mount namespace
/// `ns` refers to; the kernel refuses any other kind of descriptor.
pub fn join_mount_namespace(ns: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS) } as libc::c_long).map(drop)
}

pub fn wait_pid(pid: libc::pid_t) -> io::Result<libc::c_int> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a writable int.
        match check(unsafe { libc::waitpid(pid, &mut status, 0) } as libc::c_long) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.map(|_| status),
        }
    }
}

pub fn exit_now(code: libc::c_int) -> ! {
    // SAFETY: _exit never returns; the forked child must not run the
    // parent's destructors or atexit handlers.
    unsafe { libc::_exit(code) }
}

/// No supplementary groups: sandboxes inherit them, and root's would
/// reach files through an unmapped group inside the user namespace.
pub fn drop_supplementary_groups() -> io::Result<()> {
    // SAFETY: a zero-length list with a null pointer is valid for setgroups.
    check(unsafe { libc::setgroups(0, std::ptr::null()) } as libc::c_long).map(drop)
}

/// Bytes from the kernel's CSPRNG (blocks only before it is seeded at boot).
pub fn random<const N: usize>() -> io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    let mut filled = 0;
    while filled < N {
        let tail = &mut buf[filled..];
        // SAFETY: the pointer and length describe `tail`, which is writable.
        let got = unsafe { libc::getrandom(tail.as_mut_ptr().cast(), tail.len(), 0) };
        match check(got as libc::c_long) {
            Ok(n) => filled += n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf)
}

pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: a null siginfo asks the kernel to fill in a SI_USER one.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    })
    .map(drop)
}

/// Waits up to `timeout_ms` for the process behind `pidfd` to exit;
/// whether it did.
pub fn pidfd_wait_exit(pidfd: BorrowedFd<'_>, timeout_ms: i32) -> bool {
    let mut fds = [libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    loop {
        // SAFETY: `fds` is a valid array of one pollfd.
        match check(unsafe { libc::poll(fds.as_mut_ptr(), 1, timeout_ms) } as libc::c_long) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(n) => return n > 0,
            Err(_) => return false,
        }
    }
}

/// Bounds every read and write on the caller's socket: a client that
/// stalls mid-frame ends its own connection instead of holding a root
/// process forever.
pub fn set_socket_timeouts(sock: BorrowedFd<'_>, secs: libc::time_t) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: secs,
        tv_usec: 0,
    };
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: `tv` is a valid timeval of the size passed.
        check(unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                std::ptr::from_ref(&tv).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        } as libc::c_long)?;
    }
    Ok(())
}

/// Whether `sock` is a listening socket (systemd's Accept=no) rather than
/// one connection (Accept=yes, or a test's socket pair).
pub fn is_listening(sock: BorrowedFd<'_>) -> bool {
    let mut on: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `on` and `len` describe a writable int.
    let ret = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut on as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    ret == 0 && on != 0
}

pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: null address buffers: the peer address is not wanted.
    let fd = check(unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    } as libc::c_long)?;
    // SAFETY: accept4 returned a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Reaps every exited child without blocking; how many there were.
pub fn reap_children() -> usize {
    let mut reaped = 0;
    let mut status = 0;
    // SAFETY: `status` is a writable int; WNOHANG never blocks.
    while unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {
        reaped += 1;
    }
    reaped
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 returns.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } as libc::c_long)?;
    // SAFETY: pipe2 returned two new descriptors that we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// kill(2) of one of our own children.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::kill(pid, sig) } as libc::c_long).map(drop)
}
