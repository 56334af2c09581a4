//! Every raw system call the mechanics need, and the only `unsafe` in the
//! crate (this module and its submodules: `mount`, `term`, `fs`,
//! `netlink`). Each wrapper turns the C convention (-1 + errno) into
//! `io::Result` and owns the invariants its SAFETY comment names.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use protocol::SockFilter;

mod fs;
mod mount;
mod net;
mod netlink;
mod notify;
mod proc;
mod term;

pub use fs::*;
pub use mount::*;
pub use net::*;
pub use netlink::*;
pub use notify::*;
pub use proc::*;
pub use term::*;

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_int(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A string for the kernel: EINVAL if it holds a NUL byte.
pub fn c_string(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Takes ownership of a descriptor a system call just returned.
fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(check(fd)?).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this descriptor to us and nothing else
    // refers to it, so we are its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `struct clone_args` (linux/sched.h), the fields up to `cgroup`.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

pub enum Forked {
    Child,
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
}

/// fork(2)-like clone3 into new namespaces, returning a pidfd for the child.
///
/// The caller must be single-threaded: the child is a copy of this thread
/// only, and locks held by other threads would stay locked forever.
pub fn fork_into_namespaces(ns_flags: u64) -> io::Result<Forked> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: ns_flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed; stack is 0 so
    // the child continues on a copy of our stack like fork(2); the kernel
    // writes the pidfd into `pidfd`, which outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match check(ret)? {
        0 => Ok(Forked::Child),
        pid => {
            // SAFETY: CLONE_PIDFD made the kernel store a new descriptor that we own.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            Ok(Forked::Parent {
                pid: pid as libc::pid_t,
                pidfd,
            })
        }
    }
}

pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes.
    check_int(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

/// Sets the calling thread's uid and gid with the raw system calls. libc's
/// wrappers would also switch every other thread and wait for each, which
/// stalls behind the network thread while it creates its namespace; that
/// thread ends before exec, so only this thread's ids matter.
pub fn setresid(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain integer arguments. Group first: after the uid change we
    // may no longer be allowed to change it.
    check(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) })?;
    // SAFETY: plain integer arguments.
    check(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(drop)
}

/// setgroups(2) for the calling thread only (see `setresid`).
pub fn setgroups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: `groups` holds `len` gid_t values, which the kernel reads.
    check(unsafe {
        libc::syscall(
            libc::SYS_setgroups,
            groups.len(),
            groups.as_ptr() as *const libc::gid_t,
        )
    })
    .map(drop)
}

/// prctl with an option and one argument (or sub-option), the rest zero.
pub fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> io::Result<libc::c_int> {
    let zero: libc::c_ulong = 0;
    // SAFETY: every option we pass takes integer arguments only.
    check_int(unsafe { libc::prctl(option, arg2, zero, zero, zero) })
}

/// `prctl` with two integer arguments (e.g. `PR_CAP_AMBIENT_RAISE`).
pub fn prctl2(
    option: libc::c_int,
    arg2: libc::c_ulong,
    arg3: libc::c_ulong,
) -> io::Result<libc::c_int> {
    let zero: libc::c_ulong = 0;
    // SAFETY: every option we pass takes integer arguments only.
    check_int(unsafe { libc::prctl(option, arg2, arg3, zero, zero) })
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_DAC_READ_SEARCH: u32 = 2;

fn capget() -> io::Result<[CapData; 2]> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: version 3 takes a header and two writable data structs.
    check(unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    })?;
    Ok(data)
}

fn capset(data: &[CapData; 2]) -> io::Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: version 3 takes a header and two data structs, both valid here.
    check(unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    })
    .map(drop)
}

/// Runs `f` with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH out of the
/// effective set, so file access is checked as for the plain uid (the
/// caller's), then restores the set.
pub fn without_dac_override<T>(f: impl FnOnce() -> T) -> io::Result<T> {
    let saved = capget()?;
    let mut lowered = saved;
    lowered[0].effective &= !((1 << CAP_DAC_OVERRIDE) | (1 << CAP_DAC_READ_SEARCH));
    capset(&lowered)?;
    let out = f();
    capset(&saved)?;
    Ok(out)
}

/// Empties the effective, permitted and inheritable sets of this thread.
pub fn capset_empty() -> io::Result<()> {
    capset(&[CapData::default(); 2])
}

/// Sets the thread's effective, permitted and inheritable sets to these
/// 64-bit masks.
pub fn capset_masks(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    let half = |mask: u64, high: bool| (if high { mask >> 32 } else { mask }) as u32;
    let data = [false, true].map(|high| CapData {
        effective: half(effective, high),
        permitted: half(permitted, high),
        inheritable: half(inheritable, high),
    });
    capset(&data)
}

const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;

const LANDLOCK_RULE_PATH_BENEATH: u32 = 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version the kernel offers.
pub fn landlock_abi() -> io::Result<u32> {
    // SAFETY: with a null attribute and size 0 this flag only queries the version.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    check(ret).map(|v| v as u32)
}

pub fn landlock_create_ruleset(handled_access_fs: u64) -> io::Result<OwnedFd> {
    let attr = RulesetAttr { handled_access_fs };
    // SAFETY: `attr` is a valid ruleset attribute of the size passed.
    owned(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    })
}

pub fn landlock_add_path_rule(
    ruleset: BorrowedFd<'_>,
    dir: BorrowedFd<'_>,
    access: u64,
) -> io::Result<()> {
    let attr = PathBeneathAttr {
        allowed_access: access,
        parent_fd: dir.as_raw_fd(),
    };
    // SAFETY: `attr` is a valid path-beneath attribute that outlives the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    })
    .map(drop)
}

pub fn landlock_restrict_self(ruleset: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) })
        .map(drop)
}

/// Installs a seccomp filter on the calling thread. Requires no_new_privs
/// (or CAP_SYS_ADMIN), which the caller has set.
/// With `log`, the kernel logs every action of the filter but ALLOW.
pub fn seccomp_install(program: &[SockFilter], log: bool) -> io::Result<()> {
    let flags = if log {
        libc::SECCOMP_FILTER_FLAG_LOG
    } else {
        0
    };
    seccomp_filter(program, flags).map(drop)
}

/// Installs `program` and returns its notification listener (lowest free
/// descriptor number, close-on-exec): the program's USER_NOTIF actions
/// wait for whoever holds it. `log` as for `seccomp_install`.
pub fn seccomp_listener(program: &[SockFilter], log: bool) -> io::Result<OwnedFd> {
    let log = if log {
        libc::SECCOMP_FILTER_FLAG_LOG
    } else {
        0
    };
    let fd = seccomp_filter(program, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | log)?;
    // SAFETY: with NEW_LISTENER, seccomp returns a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// getpid(`marker`): the violations report's handover call, which its
/// filter sends to the listener; it returns once the executor answers.
pub fn seccomp_handover(marker: u64) -> io::Result<()> {
    // SAFETY: getpid reads no arguments and touches no memory; the marker
    // is only there for the filter to see.
    check(unsafe { libc::syscall(libc::SYS_getpid, marker) }).map(drop)
}

/// close(2) with its error: for a descriptor that must be gone before
/// the next step (OwnedFd's drop ignores a failed close).
pub fn close_checked(fd: OwnedFd) -> io::Result<()> {
    // SAFETY: the descriptor is ours (taken out of the OwnedFd) and
    // nothing uses it afterwards.
    check_int(unsafe { libc::close(fd.into_raw_fd()) }).map(drop)
}

fn seccomp_filter(program: &[SockFilter], flags: libc::c_ulong) -> io::Result<libc::c_long> {
    let filters: Vec<libc::sock_filter> = program
        .iter()
        .map(|f| libc::sock_filter {
            code: f.code,
            jt: f.jt,
            jf: f.jf,
            k: f.k,
        })
        .collect();
    let len =
        u16::try_from(filters.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let prog = libc::sock_fprog {
        len,
        filter: filters.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `len` instructions in `filters`, which outlives
    // the call; the kernel copies and verifies the program.
    check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags as u32,
            &prog as *const libc::sock_fprog,
        )
    })
}

/// Closes every descriptor in `first..=last`.
pub fn close_range(first: u32, last: u32) -> io::Result<()> {
    if first > last {
        return Ok(());
    }
    // SAFETY: integer arguments; the descriptors closed are not used afterwards
    // (the caller is about to exec and holds none of them in Rust objects).
    check(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) }).map(drop)
}

/// execve(2); returns only on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // SAFETY: both arrays are NULL-terminated and point at strings that
    // outlive the call.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// Brings the loopback interface up in the current network namespace.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments.
    let sock =
        owned(
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) }
                as libc::c_long,
        )?;
    // SAFETY: ifreq is a plain C struct for which all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq naming "lo"; the kernel fills the flags.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: the ioctl above initialized the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: `req` is a valid ifreq with the new flags.
    check_int(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) }).map(drop)
}

/// unshare(2): moves the calling thread into new namespaces.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: integer argument only.
    check_int(unsafe { libc::unshare(flags) }).map(drop)
}

/// setns(2): moves the calling thread into the namespace `fd` refers to.
pub fn setns(fd: BorrowedFd<'_>, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check_int(unsafe { libc::setns(fd.as_raw_fd(), nstype) }).map(drop)
}

pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors the kernel writes.
    check_int(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments; a null siginfo means "as if by kill(2)".
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    })
    .map(drop)
}

/// Waits for the child behind `pidfd` and returns (code, signal): exactly
/// one of them is meaningful, as `si_code` says.
pub fn wait_pidfd(pidfd: BorrowedFd<'_>) -> io::Result<WaitStatus> {
    // SAFETY: siginfo_t is a plain C struct for which all-zero is valid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `info` is a valid, writable siginfo_t.
        let ret = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED,
            )
        };
        match check_int(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(_) => break,
        }
    }
    // SAFETY: waitid succeeded with WEXITED, so si_status is set.
    let status = unsafe { info.si_status() };
    Ok(if info.si_code == libc::CLD_EXITED {
        WaitStatus::Exited(status)
    } else {
        WaitStatus::Signaled(status)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStatus {
    Exited(i32),
    Signaled(i32),
}

pub fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initializes it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
    }
    set
}

pub fn sigprocmask(how: libc::c_int, set: &libc::sigset_t) -> io::Result<()> {
    // SAFETY: `set` is a valid sigset_t; the old mask is not requested.
    let ret = unsafe { libc::pthread_sigmask(how, set, std::ptr::null_mut()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(())
}

/// Restores the default disposition of every catchable signal (dispositions
/// set to "ignore" would otherwise survive exec).
pub fn reset_signal_dispositions() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is always a valid disposition; invalid signal
        // numbers only make the call fail, which is ignored on purpose.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

pub fn signalfd(set: &libc::sigset_t) -> io::Result<OwnedFd> {
    // SAFETY: `set` is a valid sigset_t; -1 asks for a new descriptor.
    owned(unsafe { libc::signalfd(-1, set, libc::SFD_CLOEXEC) } as libc::c_long)
}

/// Reads one pending signal number from a signalfd.
pub fn read_signal(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: signalfd_siginfo is plain data for which all-zero is valid.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is a writable buffer of `size` bytes.
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        )
    };
    if n as usize != size {
        return Err(io::Error::last_os_error());
    }
    Ok(info.ssi_signo as libc::c_int)
}

pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `fds`, which the kernel updates in place.
    let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    check_int(ret).map(|n| n as usize)
}

pub fn getuid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::getuid() }
}

pub fn geteuid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() }
}

pub fn getgid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::getgid() }
}

/// Terminates the process at once, without running destructors or atexit
/// handlers (which belong to the parent's copy of this address space).
pub fn exit_now(code: libc::c_int) -> ! {
    // SAFETY: _exit never returns and takes an integer.
    unsafe { libc::_exit(code) }
}
