//! Filesystem and mount attempts: can the sandbox read, write, create,
//! mount, or move its root?

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

use super::{lossy_prefix, Args, Outcome, Usage};
use crate::sys;

pub fn run(attempt: &str, a: &Args<'_>) -> Result<Outcome, Usage> {
    let outcome = match attempt {
        "write" => {
            a.count(1, 1)?;
            write(a)?
        }
        "read" => {
            a.count(1, 1)?;
            read(a)?
        }
        "exists" => {
            a.count(1, 1)?;
            match fs::symlink_metadata(a.path(0)?) {
                Ok(meta) => Outcome::success(describe_meta(&meta)),
                Err(e) => Outcome::io_failed("lstat", &e),
            }
        }
        "mkdir" => {
            a.count(1, 1)?;
            io_result(fs::create_dir(a.path(0)?), "created")
        }
        "unlink" => {
            a.count(1, 1)?;
            io_result(fs::remove_file(a.path(0)?), "removed")
        }
        "chown" => {
            a.count(3, 3)?;
            let res = std::os::unix::fs::chown(a.path(0)?, Some(a.num(1)?), Some(a.num(2)?));
            io_result(res, "changed owner")
        }
        "mknod" => {
            a.count(1, 1)?;
            Outcome::from_sys(sys::mknod_char(&a.cstr(0)?, 1, 3), |()| {
                "created char device 1:3".to_owned()
            })
        }
        "mount-tmpfs" => {
            a.count(1, 1)?;
            Outcome::from_sys(sys::mount_tmpfs(&a.cstr(0)?), |()| "mounted".to_owned())
        }
        "open-tree" => {
            a.count(1, 1)?;
            Outcome::from_sys(sys::open_tree_clone(&a.cstr(0)?), |fd| {
                format!("cloned tree as fd {fd}")
            })
        }
        "fsopen" => {
            a.count(0, 0)?;
            Outcome::from_sys(sys::fsopen_tmpfs(), |fd| format!("fs context fd {fd}"))
        }
        "umount" => {
            a.count(1, 1)?;
            Outcome::from_sys(sys::umount_detach(&a.cstr(0)?), |()| {
                "unmounted (MNT_DETACH)".to_owned()
            })
        }
        "pivot-root" => {
            a.count(0, 0)?;
            Outcome::from_sys(sys::pivot_root_dot(), |()| "pivoted".to_owned())
        }
        "chroot" => {
            a.count(1, 1)?;
            io_result(std::os::unix::fs::chroot(a.path(0)?), "changed root")
        }
        "cwd" => {
            a.count(0, 0)?;
            cwd()
        }
        "fd-read" => {
            a.count(1, 1)?;
            fd_read(a.num(0)?)
        }
        _ => return Err(Usage(format!("unknown attempt {attempt:?}"))),
    };
    Ok(outcome)
}

fn io_result(res: std::io::Result<()>, done: &str) -> Outcome {
    match res {
        Ok(()) => Outcome::success(done),
        Err(e) => Outcome::io_failed("", &e),
    }
}

fn write(a: &Args<'_>) -> Result<Outcome, Usage> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(a.path(0)?);
    let mut file = match file {
        Ok(f) => f,
        Err(e) => return Ok(Outcome::io_failed("open", &e)),
    };
    match file.write_all(b"x") {
        Ok(()) => Ok(Outcome::success("wrote 1 byte")),
        Err(e) => Ok(Outcome::io_failed("write", &e)),
    }
}

fn read(a: &Args<'_>) -> Result<Outcome, Usage> {
    let file = match fs::File::open(a.path(0)?) {
        Ok(f) => f,
        Err(e) => return Ok(Outcome::io_failed("open", &e)),
    };
    let mut buf = Vec::with_capacity(4096);
    match file.take(4096).read_to_end(&mut buf) {
        Ok(_) => Ok(Outcome::success(lossy_prefix(&buf, 200))),
        Err(e) => Ok(Outcome::io_failed("read", &e)),
    }
}

/// e.g. `dir mode=0755 uid=0 gid=0`.
fn describe_meta(meta: &fs::Metadata) -> String {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_file() {
        "file"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else {
        "other"
    };
    format!(
        "{kind} mode={:04o} uid={} gid={}",
        meta.mode() & 0o7777,
        meta.uid(),
        meta.gid()
    )
}

/// The working directory, and whether it is reachable from our root: the
/// path getcwd returns must name the same inode as ".".
fn cwd() -> Outcome {
    let path = match std::env::current_dir() {
        Ok(p) => p,
        Err(e) => return Outcome::io_failed("getcwd", &e),
    };
    let text = path.to_string_lossy().into_owned();
    let same = match (fs::metadata(&path), fs::metadata(".")) {
        (Ok(p), Ok(d)) => p.dev() == d.dev() && p.ino() == d.ino(),
        _ => false,
    };
    Outcome {
        ok: same,
        errno: None,
        detail: text,
    }
}

fn fd_read(fd: i32) -> Outcome {
    let mut buf = vec![0u8; 4096];
    match sys::read_fd(fd, &mut buf) {
        Ok(n) => Outcome::success(lossy_prefix(buf.get(..n).unwrap_or_default(), 200)),
        Err(e) => Outcome::failed("read", e),
    }
}
