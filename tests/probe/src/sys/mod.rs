//! Every `unsafe` block of the probe lives here: thin, safe wrappers around
//! libc calls and raw syscalls. Each wrapper returns `Result<_, Errno>` and
//! never panics; deciding what a result means is the callers' job.
//!
//! Split by subject: this file (errno, identity, mounts, credentials, tty),
//! `process` (children, namespaces, ptrace, signals, exec, foreign ABIs) and
//! `kernel` (bpf, keys, io_uring, userfaultfd, perf, terminal ioctls).

mod kernel;
mod process;

pub use kernel::*;
pub use process::*;

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use libc::{c_int, c_long};

/// A raw `errno` value from a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's current `errno`.
    pub fn last() -> Errno {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The C library's description, e.g. "Operation not permitted".
    pub fn describe(self) -> String {
        let text = std::io::Error::from_raw_os_error(self.0).to_string();
        // std appends " (os error N)"; the JSON carries the number already.
        match text.rfind(" (os error") {
            Some(cut) => text.get(..cut).unwrap_or(&text).to_owned(),
            None => text,
        }
    }
}

pub type SysResult<T> = Result<T, Errno>;

fn check(ret: c_long) -> SysResult<c_long> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

fn check_int(ret: c_int) -> SysResult<c_int> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// Takes ownership of a file descriptor just returned by a successful
/// syscall and closes it. Reports the number for the caller's detail.
fn close_new_fd(ret: c_long) -> SysResult<c_long> {
    let fd = check(ret)?;
    let raw = RawFd::try_from(fd).map_err(|_| Errno(libc::EBADF))?;
    // SAFETY: `raw` was just returned by the kernel as a new descriptor of
    // this process; nothing else owns it, so closing it through OwnedFd is
    // the only use.
    drop(unsafe { OwnedFd::from_raw_fd(raw) });
    Ok(fd)
}

// ---------------------------------------------------------------- identity

/// Real and effective user and group ids: (uid, gid, euid, egid).
pub fn ids() -> (u32, u32, u32, u32) {
    // SAFETY: these four calls take no arguments and cannot fail.
    unsafe {
        (
            libc::getuid(),
            libc::getgid(),
            libc::geteuid(),
            libc::getegid(),
        )
    }
}

/// Supplementary group ids.
pub fn groups() -> SysResult<Vec<u32>> {
    // SAFETY: a zero size with a null pointer only asks for the count.
    let n = check_int(unsafe { libc::getgroups(0, std::ptr::null_mut()) })?;
    let mut buf: Vec<libc::gid_t> = vec![0; usize::try_from(n).unwrap_or(0)];
    // SAFETY: `buf` has room for exactly `n` entries, the size we pass.
    let got = check_int(unsafe { libc::getgroups(n, buf.as_mut_ptr()) })?;
    buf.truncate(usize::try_from(got).unwrap_or(0));
    Ok(buf)
}

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`:
/// the highest Landlock ABI the kernel offers.
pub fn landlock_abi() -> SysResult<i64> {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1 << 0;
    // SAFETY: with the VERSION flag the kernel reads no memory; NULL and 0
    // are the documented arguments.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    check(ret)
}

/// The UTS node name (hostname) as seen by `uname`.
pub fn hostname() -> SysResult<String> {
    // SAFETY: utsname is plain old data; all-zero is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    check_int(unsafe { libc::uname(&mut uts) })?;
    let bytes: Vec<u8> = uts
        .nodename
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether `fd` is an open descriptor of this process (`fcntl(F_GETFD)`).
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table; a closed or
    // invalid number yields EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Interface flags (`SIOCGIFFLAGS`) for `name`, through a throwaway
/// datagram socket (AF_INET, or AF_UNIX where AF_INET is refused).
pub fn iface_flags(name: &str) -> SysResult<u32> {
    let sock = dgram_socket(libc::AF_INET).or_else(|_| dgram_socket(libc::AF_UNIX))?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() || bytes.contains(&0) {
        return Err(Errno(libc::EINVAL));
    }
    for (dst, &src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq with a NUL-terminated name (the rest
    // is zero); SIOCGIFFLAGS writes only the flags member.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: after SIOCGIFFLAGS succeeded the union holds the flags.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    Ok(u32::from(flags as u16))
}

fn dgram_socket(domain: c_int) -> SysResult<OwnedFd> {
    // SAFETY: socket takes no pointers.
    let fd = check_int(unsafe { libc::socket(domain, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// -------------------------------------------------------- mounts and roots

pub fn mount_tmpfs(dir: &CStr) -> SysResult<()> {
    // SAFETY: all strings are NUL-terminated; data may be NULL.
    let ret = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            dir.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    check_int(ret).map(drop)
}

/// `open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)`; the
/// detached tree's fd is closed again. Returns the fd number it had.
pub fn open_tree_clone(path: &CStr) -> SysResult<c_long> {
    const OPEN_TREE_CLONE: u32 = 1;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as u32;
    // SAFETY: `path` is NUL-terminated; the kernel returns a new fd or -1.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    close_new_fd(ret)
}

/// `fsopen("tmpfs", FSOPEN_CLOEXEC)`; the fs context fd is closed again.
pub fn fsopen_tmpfs() -> SysResult<c_long> {
    const FSOPEN_CLOEXEC: u32 = 1;
    // SAFETY: the name is NUL-terminated; the kernel returns a new fd or -1.
    let ret = unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) };
    close_new_fd(ret)
}

/// `umount2(path, MNT_DETACH)`: lazy, so "busy" never hides a permission
/// answer.
pub fn umount_detach(path: &CStr) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated.
    check_int(unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) }).map(drop)
}

/// `pivot_root(".", ".")`, the idiom that stacks the old root on the new.
pub fn pivot_root_dot() -> SysResult<()> {
    // SAFETY: both arguments are NUL-terminated static strings.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) };
    check(ret).map(drop)
}

// ------------------------------------------------------------- credentials

pub fn setuid(uid: u32) -> SysResult<()> {
    // SAFETY: integer argument only.
    check_int(unsafe { libc::setuid(uid) }).map(drop)
}

pub fn setgid(gid: u32) -> SysResult<()> {
    // SAFETY: integer argument only.
    check_int(unsafe { libc::setgid(gid) }).map(drop)
}

pub fn mknod_char(path: &CStr, major: u32, minor: u32) -> SysResult<()> {
    let dev = libc::makedev(major, minor);
    // SAFETY: `path` is NUL-terminated.
    check_int(unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, dev) }).map(drop)
}

pub fn sethostname(name: &[u8]) -> SysResult<()> {
    // SAFETY: the pointer is valid for `name.len()` bytes.
    check_int(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

pub fn kill(pid: libc::pid_t, sig: c_int) -> SysResult<()> {
    // SAFETY: integer arguments only.
    check_int(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// `reboot(LINUX_REBOOT_CMD_CAD_OFF)`: only turns Ctrl-Alt-Del into a
/// signal to init; a harmless test of CAP_SYS_BOOT.
pub fn reboot_cad_off() -> SysResult<()> {
    // SAFETY: integer argument only.
    check_int(unsafe { libc::reboot(libc::LINUX_REBOOT_CMD_CAD_OFF) }).map(drop)
}

pub fn cap_ambient_raise(cap: u32) -> SysResult<()> {
    // SAFETY: integer arguments only.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE,
            libc::c_ulong::from(cap),
            0,
            0,
        )
    };
    check_int(ret).map(drop)
}

// --------------------------------------------------------------------- tty

pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: integer argument only.
    unsafe { libc::isatty(fd) == 1 }
}

pub fn ttyname(fd: RawFd) -> SysResult<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` is writable for its full length, which we pass.
    let ret = unsafe { libc::ttyname_r(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if ret != 0 {
        return Err(Errno(ret));
    }
    let name = CStr::from_bytes_until_nul(&buf).map_err(|_| Errno(libc::ERANGE))?;
    Ok(name.to_string_lossy().into_owned())
}

pub fn tcgetpgrp(fd: RawFd) -> SysResult<i32> {
    // SAFETY: integer argument only.
    check_int(unsafe { libc::tcgetpgrp(fd) })
}

/// (getpgrp(), getsid(0)).
pub fn pgrp_and_sid() -> (i32, SysResult<i32>) {
    // SAFETY: neither call takes pointers; getpgrp cannot fail.
    unsafe { (libc::getpgrp(), check_int(libc::getsid(0))) }
}
