//! File-tree operations relative to directory descriptors. Every name
//! passed here is a single path component and every open uses O_NOFOLLOW,
//! so walking a tree never follows a symlink.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{check, check_int, owned};

/// The names in the directory `dir`, without `.` and `..`.
pub fn read_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    // fdopendir takes ownership of its descriptor and moves its offset:
    // give it a fresh descriptor for the same directory.
    let fd = open_at(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
    // SAFETY: `raw` is an open directory descriptor we own; on success the
    // DIR stream owns it, on failure we close it.
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        let err = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `raw` is still ours to close.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
        return Err(err);
    }
    let mut entries = Vec::new();
    let result = loop {
        // SAFETY: errno is thread-local; readdir signals end or error
        // through it.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream` is a valid DIR stream until closedir below.
        let ent = unsafe { libc::readdir64(stream) };
        if ent.is_null() {
            let err = io::Error::last_os_error();
            break if err.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(err)
            };
        }
        // SAFETY: a non-null entry is valid until the next readdir call,
        // and d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            entries.push(name.to_owned());
        }
    };
    // SAFETY: `stream` came from fdopendir and is closed exactly once.
    unsafe { libc::closedir(stream) };
    result.map(|()| entries)
}

/// openat(2) with O_NOFOLLOW and O_CLOEXEC added.
pub fn open_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags,
            libc::c_uint::from(mode),
        )
    } as libc::c_long)
}

/// fstatat(2) without following a final symlink.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data; the kernel fills it on success.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated and `st` is writable.
    check_int(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

pub fn readlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<CString> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: the pointer and length describe `buf`.
    let n = check(unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    } as libc::c_long)?;
    buf.truncate(n as usize);
    CString::new(buf).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub fn unlink_at(dir: BorrowedFd<'_>, name: &CStr, is_dir: bool) -> io::Result<()> {
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check_int(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

pub fn mkfifo_at(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check_int(unsafe { libc::mkfifoat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

/// Copies `len` bytes from `src` to `dst` in the kernel; returns how many
/// were copied (less if `src` shrank meanwhile).
pub fn copy_file_data(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, len: u64) -> io::Result<u64> {
    let mut done = 0u64;
    while done < len {
        let chunk = usize::try_from(len - done)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        // SAFETY: integer arguments; a null offset uses and advances the
        // file positions.
        let n = check(unsafe {
            libc::sendfile(
                dst.as_raw_fd(),
                src.as_raw_fd(),
                std::ptr::null_mut(),
                chunk,
            )
        } as libc::c_long)?;
        if n == 0 {
            break;
        }
        done += n as u64;
    }
    Ok(done)
}

/// A copy of `fd` that survives exec (no close-on-exec), for handing to
/// a child process as /proc/self/fd/N.
pub fn dup_inheritable(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD returns a new descriptor, which we own.
    let new = check_int(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD, 3) })?;
    // SAFETY: see above.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

pub fn fchmod(fd: BorrowedFd<'_>, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check_int(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(drop)
}

pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check_int(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) }).map(drop)
}

/// Sets access and modification times of `name` in `dir` (a symlink itself,
/// not its target).
pub fn set_times_at(dir: BorrowedFd<'_>, name: &CStr, st: &libc::stat) -> io::Result<()> {
    let times = [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ];
    // SAFETY: `name` is NUL-terminated; `times` holds the two timespecs
    // utimensat reads.
    check_int(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// The `f_type` of the filesystem holding `path`.
pub fn statfs_magic(path: &std::path::Path) -> io::Result<i64> {
    let c = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: statfs is plain data; the kernel fills it on success.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is writable.
    check_int(unsafe { libc::statfs(c.as_ptr(), &mut st) })?;
    Ok(st.f_type)
}
