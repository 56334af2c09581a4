//! Kernel attack surface: bpf, keyrings, io_uring, userfaultfd, perf and
//! terminal ioctls.

use std::os::fd::RawFd;

use libc::{c_int, c_long};

use super::{check, check_int, close_new_fd, SysResult};

// ------------------------------------------------------- kernel interfaces

/// `bpf(BPF_PROG_LOAD, <zeroed attr>, 128)`: a permitted caller gets
/// EINVAL (program type 0), a refused one EPERM or ENOSYS.
pub fn bpf_prog_load_zeroed() -> SysResult<c_long> {
    const BPF_PROG_LOAD: c_int = 5;
    let mut attr = [0u64; 16];
    let size = std::mem::size_of_val(&attr);
    // SAFETY: `attr` is a writable, zeroed buffer of `size` bytes.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, attr.as_mut_ptr(), size) };
    close_new_fd(ret)
}

/// `keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)`.
pub fn keyctl_session_keyring_id() -> SysResult<c_long> {
    const KEYCTL_GET_KEYRING_ID: c_int = 0;
    const KEY_SPEC_SESSION_KEYRING: c_int = -3;
    // SAFETY: this keyctl operation takes integer arguments only.
    check(unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_SESSION_KEYRING,
            0,
        )
    })
}

/// `add_key("user", "nucleus-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING)`:
/// the process keyring dies with the probe.
pub fn add_key_user() -> SysResult<c_long> {
    const KEY_SPEC_PROCESS_KEYRING: c_int = -2;
    let payload = b"x";
    // SAFETY: type and description are NUL-terminated; the payload pointer
    // is valid for the length passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_add_key,
            c"user".as_ptr(),
            c"nucleus-probe".as_ptr(),
            payload.as_ptr(),
            payload.len(),
            KEY_SPEC_PROCESS_KEYRING,
        )
    })
}

/// `io_uring_setup(1, <zeroed params>)`; the ring fd is closed again.
pub fn io_uring_setup_one() -> SysResult<c_long> {
    let mut params = [0u32; 30]; // struct io_uring_params, 120 bytes
                                 // SAFETY: `params` is a writable, zeroed io_uring_params.
    let ret = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    close_new_fd(ret)
}

/// `userfaultfd(O_CLOEXEC | O_NONBLOCK)`; the fd is closed again.
pub fn userfaultfd() -> SysResult<c_long> {
    // SAFETY: takes an integer flag only.
    let ret = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) };
    close_new_fd(ret)
}

/// `perf_event_open` for a software task-clock counter on ourselves with
/// exclude_kernel/exclude_hv, the least-privileged event there is.
pub fn perf_event_open_task_clock() -> SysResult<c_long> {
    const PERF_TYPE_SOFTWARE: u32 = 1;
    const PERF_COUNT_SW_TASK_CLOCK: u64 = 1;
    const DISABLED: u64 = 1 << 0;
    const EXCLUDE_KERNEL: u64 = 1 << 5;
    const EXCLUDE_HV: u64 = 1 << 6;
    const PERF_FLAG_FD_CLOEXEC: u64 = 1 << 3;
    let mut attr = [0u64; 16]; // struct perf_event_attr, 128 bytes
    let ty = PERF_TYPE_SOFTWARE.to_ne_bytes();
    let size = 128u32.to_ne_bytes();
    attr[0] = u64::from_ne_bytes([
        ty[0], ty[1], ty[2], ty[3], size[0], size[1], size[2], size[3],
    ]);
    attr[1] = PERF_COUNT_SW_TASK_CLOCK;
    attr[5] = DISABLED | EXCLUDE_KERNEL | EXCLUDE_HV;
    // SAFETY: `attr` is a 128-byte perf_event_attr whose size field says so.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_mut_ptr(),
            0,
            -1,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    close_new_fd(ret)
}

/// `ioctl(fd, TIOCSTI, &'x')` through the C library.
pub fn tiocsti(fd: RawFd) -> SysResult<()> {
    let c: libc::c_char = b'x' as libc::c_char;
    // SAFETY: TIOCSTI reads one byte from the pointer, which is valid.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCSTI, &c) }).map(drop)
}

/// TIOCSTI through the raw syscall with bit 32 of the request set: the
/// kernel truncates the request to 32 bits, a seccomp filter comparing all
/// 64 bits would not.
pub fn tiocsti_high_bits(fd: RawFd) -> SysResult<()> {
    let c: libc::c_char = b'x' as libc::c_char;
    const TIOCSTI: u64 = 0x5412;
    let request = TIOCSTI | 0x1_0000_0000;
    // SAFETY: as for tiocsti; the request's upper bits are ignored by the
    // kernel.
    check(unsafe { libc::syscall(libc::SYS_ioctl, fd, request, &c) }).map(drop)
}

/// `ioctl(fd, TIOCLINUX, &subcode)`.
pub fn tioclinux(fd: RawFd, subcode: u8) -> SysResult<c_int> {
    const TIOCLINUX: libc::Ioctl = 0x541C;
    let mut arg = [subcode, 0u8, 0, 0];
    // SAFETY: TIOCLINUX reads the subcode byte and may write one byte back
    // into the same 4-byte buffer.
    check_int(unsafe { libc::ioctl(fd, TIOCLINUX, arg.as_mut_ptr()) })
}
