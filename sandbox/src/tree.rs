//! Directory trees, walked through descriptors only: copy one tree into
//! another, hash a tree into a manifest digest, and mirror a tree back.
//! No operation here follows a symlink: entries are opened one component
//! at a time with O_NOFOLLOW, and symlinks are copied as symlinks.

use std::ffi::{CStr, CString};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use protocol::Sha256;
use sha2::{Digest, Sha256 as Hasher};

use crate::sys;

/// A failure at one place in a tree.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct TreeError {
    /// Relative to the tree's root.
    pub path: String,
    pub source: io::Error,
}

type Result<T> = std::result::Result<T, TreeError>;

/// Files and bytes processed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
    Fifo,
    Other,
}

fn kind_of(st: &libc::stat) -> Kind {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFREG => Kind::File,
        libc::S_IFLNK => Kind::Symlink,
        libc::S_IFIFO => Kind::Fifo,
        _ => Kind::Other,
    }
}

fn join(prefix: &str, name: &CStr) -> String {
    let name = String::from_utf8_lossy(name.to_bytes());
    if prefix.is_empty() {
        name.into_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

fn at<T>(path: &str, r: io::Result<T>) -> Result<T> {
    r.map_err(|source| TreeError {
        path: if path.is_empty() {
            ".".into()
        } else {
            path.into()
        },
        source,
    })
}

/// Entries of `dir`, sorted by name, each with its lstat.
fn entries(dir: BorrowedFd<'_>, path: &str) -> Result<Vec<(CString, libc::stat)>> {
    let mut list = at(path, sys::read_dir(dir))?
        .into_iter()
        .map(|name| {
            let st = at(&join(path, &name), sys::lstat_at(dir, &name))?;
            Ok((name, st))
        })
        .collect::<Result<Vec<_>>>()?;
    list.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(list)
}

fn open_dir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    sys::open_at(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

/// Opens a regular file for reading; O_NONBLOCK so that a file swapped for
/// a FIFO under our feet cannot block the open.
fn open_file(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    let fd = sys::open_at(
        dir,
        name,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
        0,
    )?;
    if sys::fstat(fd.as_fd())?.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(fd)
}

/// Copies the contents of `src` into the empty directory `dst`, keeping
/// modes and times. `progress` is called after every file.
pub fn copy(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Progress> {
    let mut done = Progress::default();
    copy_dir(src, dst, "", &mut done, progress)?;
    Ok(done)
}

fn copy_dir(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    path: &str,
    done: &mut Progress,
    progress: &mut dyn FnMut(Progress),
) -> Result<()> {
    for (name, st) in entries(src, path)? {
        let here = join(path, &name);
        copy_entry(src, dst, &name, &st, &here, done, progress)?;
        done.files += 1;
        progress(*done);
    }
    Ok(())
}

fn copy_entry(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    name: &CStr,
    st: &libc::stat,
    here: &str,
    done: &mut Progress,
    progress: &mut dyn FnMut(Progress),
) -> Result<()> {
    let mode = st.st_mode & 0o7777;
    match kind_of(st) {
        Kind::Dir => {
            at(here, sys::mkdirat(dst, name, 0o700))?;
            let from = at(here, open_dir(src, name))?;
            let to = at(here, open_dir(dst, name))?;
            copy_dir(from.as_fd(), to.as_fd(), here, done, progress)?;
            at(here, sys::fchmod(to.as_fd(), mode))?;
        }
        Kind::File => {
            let from = at(here, open_file(src, name))?;
            let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
            let to = at(here, sys::open_at(dst, name, flags, 0o600))?;
            done.bytes += at(
                here,
                sys::copy_file_data(from.as_fd(), to.as_fd(), st.st_size as u64),
            )?;
            at(here, sys::fchmod(to.as_fd(), mode))?;
        }
        Kind::Symlink => {
            let target = at(here, sys::readlink_at(src, name))?;
            at(here, sys::symlinkat(&target, dst, name))?;
        }
        Kind::Fifo => at(here, sys::mkfifo_at(dst, name, mode))?,
        Kind::Other => {
            return at(
                here,
                Err(io::Error::other(
                    "sockets and device files cannot be copied",
                )),
            );
        }
    }
    at(here, sys::set_times_at(dst, name, st))
}

/// SHA-256 over a sorted manifest of the tree: one line per entry with
/// its kind, path, permission bits, size and content hash (or link
/// target). Two trees with the same digest hold the same files.
pub fn manifest_digest(root: BorrowedFd<'_>) -> Result<Sha256> {
    let mut manifest = Hasher::new();
    hash_dir(root, "", &mut manifest)?;
    Ok(Sha256(manifest.finalize().into()))
}

fn hash_dir(dir: BorrowedFd<'_>, path: &str, manifest: &mut Hasher) -> Result<()> {
    for (name, st) in entries(dir, path)? {
        let here = join(path, &name);
        let kind = kind_of(&st);
        let content = match kind {
            Kind::File => {
                let fd = at(&here, open_file(dir, &name))?;
                hex(&at(&here, hash_file(fd))?)
            }
            Kind::Symlink => hex(at(&here, sys::readlink_at(dir, &name))?.as_bytes()),
            _ => String::new(),
        };
        let size = if kind == Kind::File { st.st_size } else { 0 };
        let line = format!(
            "{kind:?} {} {:o} {size} {content}\n",
            hex(here.as_bytes()),
            st.st_mode & 0o7777
        );
        manifest.update(line.as_bytes());
        if kind == Kind::Dir {
            let sub = at(&here, open_dir(dir, &name))?;
            hash_dir(sub.as_fd(), &here, manifest)?;
        }
    }
    Ok(())
}

fn hash_file(fd: OwnedFd) -> io::Result<[u8; 32]> {
    let mut file = std::fs::File::from(fd);
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a mirror changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub written: u64,
    pub removed: u64,
}

/// Makes `dst` hold exactly what `src` holds: new and modified entries are
/// copied, entries missing from `src` are removed. Regular files with the
/// same size, mtime and mode are taken as unchanged. Nothing in `dst` is
/// ever followed: a symlink there is replaced, never written through.
pub fn mirror(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<SyncStats> {
    let mut stats = SyncStats::default();
    mirror_dir(src, dst, "", &mut stats)?;
    Ok(stats)
}

fn mirror_dir(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    path: &str,
    stats: &mut SyncStats,
) -> Result<()> {
    let wanted = entries(src, path)?;
    let present = entries(dst, path)?;
    for (name, st) in &present {
        if !wanted.iter().any(|(n, _)| n == name) {
            remove(dst, name, st, &join(path, name))?;
            stats.removed += 1;
        }
    }
    for (name, st) in &wanted {
        let here = join(path, name);
        let existing = present.iter().find(|(n, _)| n == name).map(|(_, s)| s);
        match (kind_of(st), existing) {
            (Kind::Dir, Some(old)) if kind_of(old) == Kind::Dir => {
                let from = at(&here, open_dir(src, name))?;
                let to = at(&here, open_dir(dst, name))?;
                mirror_dir(from.as_fd(), to.as_fd(), &here, stats)?;
                at(&here, sys::fchmod(to.as_fd(), st.st_mode & 0o7777))?;
                at(&here, sys::set_times_at(dst, name, st))?;
            }
            (Kind::File, Some(old)) if unchanged(st, old) => {}
            (Kind::Symlink, Some(old))
                if kind_of(old) == Kind::Symlink
                    && at(&here, sys::readlink_at(src, name))?
                        == at(&here, sys::readlink_at(dst, name))? => {}
            (_, old) => {
                if let Some(old) = old {
                    remove(dst, name, old, &here)?;
                }
                let mut ignored = Progress::default();
                copy_entry(src, dst, name, st, &here, &mut ignored, &mut |_| {})?;
                stats.written += 1;
            }
        }
    }
    Ok(())
}

fn unchanged(new: &libc::stat, old: &libc::stat) -> bool {
    kind_of(old) == Kind::File
        && new.st_size == old.st_size
        && new.st_mtime == old.st_mtime
        && new.st_mtime_nsec == old.st_mtime_nsec
        && new.st_mode == old.st_mode
}

/// Removes an entry; a directory with everything in it.
fn remove(dir: BorrowedFd<'_>, name: &CStr, st: &libc::stat, here: &str) -> Result<()> {
    if kind_of(st) == Kind::Dir {
        let sub = at(here, open_dir(dir, name))?;
        for (child, child_st) in entries(sub.as_fd(), here)? {
            remove(sub.as_fd(), &child, &child_st, &join(here, &child))?;
        }
    }
    at(here, sys::unlink_at(dir, name, kind_of(st) == Kind::Dir))
}

/// Opens a directory tree's root by path, for the functions above.
pub fn open_root(path: &std::path::Path) -> io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)?;
    Ok(file.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::{Path, PathBuf};

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nucleus-tree-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn sample(root: &Path) {
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/file"), b"hello").unwrap();
        fs::write(root.join("top"), vec![7u8; 300_000]).unwrap();
        fs::set_permissions(root.join("top"), fs::Permissions::from_mode(0o751)).unwrap();
        symlink("/etc/passwd", root.join("link-out")).unwrap();
        symlink("a/b/file", root.join("link-in")).unwrap();
    }

    #[test]
    fn copy_preserves_contents_modes_and_links() {
        let (src, dst) = (tempdir("src"), tempdir("dst"));
        sample(&src);
        let (s, d) = (open_root(&src).unwrap(), open_root(&dst).unwrap());
        let done = copy(s.as_fd(), d.as_fd(), &mut |_| {}).unwrap();
        assert_eq!(done.files, 6);
        assert_eq!(done.bytes, 300_005);
        assert_eq!(fs::read(dst.join("a/b/file")).unwrap(), b"hello");
        assert_eq!(
            fs::metadata(dst.join("top")).unwrap().permissions().mode() & 0o7777,
            0o751
        );
        assert_eq!(
            fs::read_link(dst.join("link-out")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            manifest_digest(s.as_fd()).unwrap(),
            manifest_digest(d.as_fd()).unwrap()
        );
        fs::write(dst.join("a/b/file"), b"HELLO").unwrap();
        assert_ne!(
            manifest_digest(s.as_fd()).unwrap(),
            manifest_digest(d.as_fd()).unwrap()
        );
        fs::remove_dir_all(src).unwrap();
        fs::remove_dir_all(dst).unwrap();
    }

    #[test]
    fn mirror_applies_new_modified_and_deleted_without_following_links() {
        let (work, host, outside) = (tempdir("work"), tempdir("host"), tempdir("outside"));
        sample(&work);
        sample(&host);
        fs::write(outside.join("victim"), b"keep").unwrap();
        // The host tree has a symlink where the new tree has a directory.
        fs::remove_dir_all(host.join("a")).unwrap();
        symlink(&outside, host.join("a")).unwrap();
        fs::write(work.join("new"), b"new").unwrap();
        fs::remove_file(work.join("top")).unwrap();
        let (w, h) = (open_root(&work).unwrap(), open_root(&host).unwrap());
        let stats = mirror(w.as_fd(), h.as_fd()).unwrap();
        assert_eq!(fs::read(host.join("new")).unwrap(), b"new");
        assert!(!host.join("top").exists());
        assert!(fs::symlink_metadata(host.join("a")).unwrap().is_dir());
        assert_eq!(fs::read(outside.join("victim")).unwrap(), b"keep");
        assert_eq!(
            manifest_digest(w.as_fd()).unwrap(),
            manifest_digest(h.as_fd()).unwrap()
        );
        assert!(stats.written >= 2 && stats.removed >= 1, "{stats:?}");
        for d in [work, host, outside] {
            fs::remove_dir_all(d).unwrap();
        }
    }
}
