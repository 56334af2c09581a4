//! Children, namespaces, ptrace, signals, exec and foreign syscall ABIs.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use libc::{c_int, c_long};

use super::{check, check_int, Errno, SysResult};

// ------------------------------------------------- namespaces and children

/// How a waited-for child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStatus {
    Exited(i32),
    Signaled(i32),
    Stopped(i32),
    Other(i32),
}

impl WaitStatus {
    fn from_raw(status: c_int) -> WaitStatus {
        if libc::WIFEXITED(status) {
            WaitStatus::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            WaitStatus::Signaled(libc::WTERMSIG(status))
        } else if libc::WIFSTOPPED(status) {
            WaitStatus::Stopped(libc::WSTOPSIG(status))
        } else {
            WaitStatus::Other(status)
        }
    }

    pub fn describe(self) -> String {
        match self {
            WaitStatus::Exited(code) => format!("exited {code}"),
            WaitStatus::Signaled(sig) => format!("killed by signal {sig}"),
            WaitStatus::Stopped(sig) => format!("stopped by signal {sig}"),
            WaitStatus::Other(raw) => format!("wait status {raw:#x}"),
        }
    }
}

fn wait_for(pid: libc::pid_t) -> SysResult<WaitStatus> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer.
        let ret = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if ret >= 0 {
            return Ok(WaitStatus::from_raw(status));
        }
        let err = Errno::last();
        if err.0 != libc::EINTR {
            return Err(err);
        }
    }
}

pub fn unshare(flags: c_int) -> SysResult<()> {
    // SAFETY: unshare takes no pointers; the probe is single-threaded.
    check_int(unsafe { libc::unshare(flags) }).map(drop)
}

/// Raw `clone(flags | SIGCHLD, 0, 0, 0, 0)` used like fork: the child
/// `_exit(0)`s at once, the parent reaps it. Errors are clone's.
pub fn clone_and_reap(flags: c_long) -> SysResult<WaitStatus> {
    let flags = flags | c_long::from(libc::SIGCHLD);
    // SAFETY: without CLONE_VM and with a null stack the child runs on a
    // copy-on-write copy of our stack, exactly like fork; it calls only
    // _exit, which is async-signal-safe.
    let pid =
        check(unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) })?;
    if pid == 0 {
        // SAFETY: in the child; _exit never returns and runs no destructors.
        unsafe { libc::_exit(0) }
    }
    wait_for(libc::pid_t::try_from(pid).map_err(|_| Errno(libc::ECHILD))?)
}

/// Raw `clone3` with a zeroed `struct clone_args` (v2, 88 bytes) whose
/// `flags` and `exit_signal = SIGCHLD` are set; fork-like, as above.
pub fn clone3_and_reap(flags: u64) -> SysResult<WaitStatus> {
    // flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size,
    // tls, set_tid, set_tid_size, cgroup
    let mut args = [0u64; 11];
    args[0] = flags;
    args[4] = libc::SIGCHLD as u64;
    let size = std::mem::size_of_val(&args);
    // SAFETY: `args` is a valid clone_args of `size` bytes; with no stack
    // and no CLONE_VM the child is a fork-like copy that only calls _exit.
    let pid = check(unsafe { libc::syscall(libc::SYS_clone3, args.as_mut_ptr(), size) })?;
    if pid == 0 {
        // SAFETY: in the child; _exit never returns and runs no destructors.
        unsafe { libc::_exit(0) }
    }
    wait_for(libc::pid_t::try_from(pid).map_err(|_| Errno(libc::ECHILD))?)
}

pub fn setns(fd: BorrowedFd<'_>, nstype: c_int) -> SysResult<()> {
    // SAFETY: `fd` is a live descriptor borrowed for the call.
    check_int(unsafe { libc::setns(fd.as_raw_fd(), nstype) }).map(drop)
}

/// A forked child's report: what the closure returned (if it got that far)
/// and how the child ended.
#[derive(Debug, Clone, Copy)]
pub struct ChildReport {
    pub returned: Option<i64>,
    pub status: WaitStatus,
}

/// Forks; the child runs `f`, writes its result through a pipe and
/// `_exit(0)`s. Used for calls that may kill the caller (SIGSYS, SIGSEGV).
pub fn run_in_child(f: fn() -> i64) -> SysResult<ChildReport> {
    let mut fds: [c_int; 2] = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check_int(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both are new descriptors we own.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the probe is single-threaded, so the child may run Rust code.
    let pid = check_int(unsafe { libc::fork() })?;
    if pid == 0 {
        let bytes = f().to_ne_bytes();
        // SAFETY: writing a local buffer to our pipe; then _exit without
        // running destructors or flushing the parent's stdio buffers.
        unsafe {
            libc::write(wr.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
            libc::_exit(0)
        }
    }
    drop(wr);
    let mut buf = [0u8; 8];
    let got = read_fd(rd.as_raw_fd(), &mut buf);
    let status = wait_for(pid)?;
    let returned = match got {
        Ok(8) => Some(i64::from_ne_bytes(buf)),
        _ => None,
    };
    Ok(ChildReport { returned, status })
}

/// getpid through the x32 ABI: `syscall` with `39 | __X32_SYSCALL_BIT`.
/// Returns the raw rax (a pid, or -errno).
#[cfg(target_arch = "x86_64")]
pub fn x32_getpid() -> i64 {
    let mut rax: i64 = 39 | 0x4000_0000;
    // SAFETY: getpid takes no arguments and touches no memory; the
    // `syscall` instruction clobbers rcx and r11, declared here.
    unsafe {
        std::arch::asm!(
            "syscall",
            inout("rax") rax,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    rax
}

/// getpid through the i386 ABI: `int 0x80` with eax = 20. Returns the raw
/// eax, sign-extended (a pid, or -errno).
#[cfg(target_arch = "x86_64")]
pub fn i386_getpid() -> i64 {
    let mut eax: i32 = 20;
    // SAFETY: i386 getpid takes no arguments and touches no memory; the
    // compat entry zeroes r8-r11 on return, so they are declared clobbered.
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inout("eax") eax,
            lateout("r8") _,
            lateout("r9") _,
            lateout("r10") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    i64::from(eax)
}

// ------------------------------------------------------------------ ptrace

/// PTRACE_ATTACH, wait for the attach stop, then PTRACE_DETACH.
pub fn ptrace_attach_detach(pid: libc::pid_t) -> SysResult<WaitStatus> {
    // SAFETY: PTRACE_ATTACH reads no memory from the addr/data arguments.
    check(unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0usize, 0usize) })?;
    let stop = wait_for(pid);
    // SAFETY: detaching with signal 0; addr/data carry no pointers.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0usize, 0usize) };
    stop
}

pub fn ptrace_traceme() -> SysResult<()> {
    // SAFETY: PTRACE_TRACEME ignores pid, addr and data.
    check(unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0usize, 0usize) }).map(drop)
}

// --------------------------------------------------------------- processes

/// `execv(path, argv)` with SIGPIPE back at its default. Returns only on
/// failure.
pub fn execv(path: &CStr, argv: &[CString]) -> Errno {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: the Rust runtime set SIGPIPE to SIG_IGN; restoring the
    // default for the new program touches no memory.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // SAFETY: `path` and every argv entry are NUL-terminated and outlive
    // the call; the array ends with NULL.
    unsafe { libc::execv(path.as_ptr(), ptrs.as_ptr()) };
    Errno::last()
}

/// `read(fd, buf)` on any descriptor number, owned or inherited.
pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes.
        let ret = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if ret >= 0 {
            return Ok(usize::try_from(ret).unwrap_or(0));
        }
        let err = Errno::last();
        if err.0 != libc::EINTR {
            return Err(err);
        }
    }
}

/// Resets `sig` to its default action, unblocks it and raises it. Returns
/// only if the process survived.
pub fn raise_default(sig: c_int) -> SysResult<()> {
    // SAFETY: installing SIG_DFL touches no memory of ours. It fails for
    // SIGKILL/SIGSTOP (always default anyway) and for invalid numbers,
    // which raise() below reports.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
    let set = sigset(&[sig])?;
    // SAFETY: `set` is an initialized sigset; the old mask is not wanted.
    unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    // SAFETY: integer argument only.
    check_int(unsafe { libc::raise(sig) }).map(drop)
}

static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn record_signal(sig: c_int) {
    CAUGHT.store(sig, Ordering::SeqCst);
}

fn sigset(sigs: &[c_int]) -> SysResult<libc::sigset_t> {
    // SAFETY: sigset_t is plain old data; sigemptyset initializes it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    check_int(unsafe { libc::sigemptyset(&mut set) })?;
    for &sig in sigs {
        // SAFETY: `set` is a valid, initialized sigset_t.
        check_int(unsafe { libc::sigaddset(&mut set, sig) })?;
    }
    Ok(set)
}

/// Blocks `sigs`, installs a recording handler for each, and returns the
/// previous mask with `sigs` removed, for `wait_for_signal`.
pub fn catch_signals(sigs: &[c_int]) -> SysResult<libc::sigset_t> {
    let set = sigset(sigs)?;
    // SAFETY: sigset_t is plain old data.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both sets are valid; blocking first means no signal can
    // arrive between installing the handler and waiting.
    check_int(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) })?;
    for &sig in sigs {
        // SAFETY: sigaction is plain old data; all-zero is a valid value.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = record_signal as *const () as libc::sighandler_t;
        // SAFETY: `action` is initialized; the handler only stores to an
        // atomic, which is async-signal-safe.
        check_int(unsafe { libc::sigaction(sig, &action, std::ptr::null_mut()) })?;
        // SAFETY: `old` is a valid sigset_t.
        unsafe { libc::sigdelset(&mut old, sig) };
    }
    Ok(old)
}

/// Sleeps in `sigsuspend(mask)` until a handler from `catch_signals` ran;
/// returns the signal number.
pub fn wait_for_signal(mask: &libc::sigset_t) -> i32 {
    loop {
        // SAFETY: `mask` is a valid sigset_t; sigsuspend always returns -1
        // with EINTR after a handler ran.
        unsafe { libc::sigsuspend(mask) };
        let sig = CAUGHT.load(Ordering::SeqCst);
        if sig != 0 {
            return sig;
        }
    }
}
