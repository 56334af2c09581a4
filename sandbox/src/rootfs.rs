//! Applying the mount steps: build the new root at a staging point inside
//! the sandbox's private mount namespace, then pivot into it.
//!
//! Every target is resolved with `openat2(RESOLVE_IN_ROOT)` relative to the
//! new root and mounted through `/proc/self/fd/N`, so a symlink inside a
//! root filesystem can never redirect a mount onto the host. Host sources
//! are opened before the staging mount exists, so the staging point cannot
//! shadow them.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use protocol::{AbsPath, RootFs, RootSource, MAX_COPY_BYTES, SECRETS_DIR};

use crate::error::{Context, Error};
use crate::inputs::{self, Inputs};
use crate::mounts::Step;
use crate::sources::{open_path, Sources};
use crate::{overlay, sys};

/// Where the new root is assembled. Any directory works: the mount only
/// exists in the sandbox's own mount namespace and the host sources were
/// opened before it appeared.
const STAGING: &str = "/tmp";

/// How the process ended up confined to the new root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confinement {
    PivotRoot,
    /// pivot_root failed and the plan allowed falling back to chroot.
    Chroot,
}

fn fd_path(fd: &impl AsRawFd) -> io::Result<CString> {
    sys::c_string(&format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The new root while it is being furnished, mounted at the staging point.
#[derive(Debug)]
pub struct NewRoot {
    root: OwnedFd,
    /// Where the root is mounted before pivot_root.
    path: String,
    sources: Sources,
    /// Secret contents, consumed by the `Secrets` step.
    secrets: Vec<OwnedFd>,
    /// The copied workspace, for the parent to sync back.
    exported: Option<OwnedFd>,
}

impl NewRoot {
    /// Makes every mount private, gathers every host source the steps name
    /// (before anything can shadow them) and mounts the root at the staging
    /// point. Must run in a new mount namespace with CAP_SYS_ADMIN over it.
    pub fn begin(plan_root: &RootFs, steps: &[Step], inputs: Inputs) -> Result<NewRoot, Error> {
        // Nothing we mount may propagate back to the host's namespace.
        sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
            .step(|| "making / private".into())?;
        let mut sources = Sources::default();
        sources.add_detached(inputs.host_trees);
        for src in crate::mounts::host_sources(plan_root, steps) {
            sources.open_if_missing(src)?;
        }
        let path = match &plan_root.overlay {
            None => mount_root(&plan_root.source, &mut sources)?,
            Some(upper) => overlay::mount_root(STAGING, &plan_root.source, upper, &mut sources)?,
        };
        let root = open_path(&path).step(|| "opening the new root".into())?;
        let attrs = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
        sys::mount_setattr(root.as_fd(), attrs, true)
            .step(|| "setting nosuid,nodev on the root".into())?;
        Ok(NewRoot {
            root,
            path,
            sources,
            secrets: inputs.secrets,
            exported: None,
        })
    }

    pub fn apply(&mut self, steps: &[Step]) -> Result<(), Error> {
        steps.iter().try_for_each(|step| self.apply_one(step))
    }

    /// The directory of the exported copy (see `Step::CopyTree`), once.
    pub fn take_exported(&mut self) -> Option<OwnedFd> {
        self.exported.take()
    }

    fn apply_one(&mut self, step: &Step) -> Result<(), Error> {
        let root = &self.root;
        match step {
            Step::Bind {
                source,
                target,
                read_only,
            } => {
                let tree = self.sources.tree(source)?;
                let ro = if *read_only {
                    sys::MOUNT_ATTR_RDONLY
                } else {
                    0
                };
                let attrs = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | ro;
                attach(root, tree, target, attrs).step(|| format!("binding {source} to {target}"))
            }
            Step::DevNode(node) => {
                let path = abs(&format!("/dev/{node}"))?;
                let tree = self.sources.tree(&path)?;
                let attrs = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC;
                attach(root, tree, &path, attrs).step(|| format!("binding device {path}"))
            }
            Step::CopyFile { source, target } => {
                let src = self.sources.fd(source)?;
                copy_file(root, src, target).step(|| format!("copying {source} to {target}"))
            }
            Step::Overlay { lower, target } => {
                let fd = self.sources.fd(lower)?;
                let target_fd =
                    ensure(root, target, false).step(|| format!("creating {target}"))?;
                let at = format!("/proc/self/fd/{}", target_fd.as_raw_fd());
                overlay::mount_layer(STAGING, fd, &at, &overlay::layer_name(target))
                    .step(|| format!("mounting an overlay of {lower} on {target}"))
            }
            Step::CopyTree {
                source,
                target,
                flag,
                verify,
                export,
                read_only,
            } => {
                let dir = self.fresh_tmpfs(target, 0o755)?;
                inputs::copy_tree(self.sources.fd(source)?, dir.as_fd(), flag, *verify)?;
                if *read_only {
                    sys::mount_setattr(dir.as_fd(), sys::MOUNT_ATTR_RDONLY, false)
                        .step(|| format!("making {target} read-only"))?;
                }
                if *export {
                    self.exported = Some(dir);
                }
                Ok(())
            }
            Step::Secrets { secrets, uid, gid } => {
                let target = abs(SECRETS_DIR)?;
                let dir = self.fresh_tmpfs(&target, 0o700)?;
                let fds = std::mem::take(&mut self.secrets);
                inputs::place_secrets(dir.as_fd(), secrets, fds, *uid, *gid)?;
                sys::mount_setattr(dir.as_fd(), sys::MOUNT_ATTR_RDONLY, false)
                    .step(|| format!("making {target} read-only"))
            }
            other => apply_kernel_step(other, root),
        }
    }

    /// Mounts an empty tmpfs at `target` and opens it as a directory.
    fn fresh_tmpfs(&self, target: &AbsPath, mode: u32) -> Result<OwnedFd, Error> {
        let flags = libc::MS_NOSUID | libc::MS_NODEV;
        fs_mount(
            &self.root,
            target,
            c"tmpfs",
            flags,
            &format!("mode={mode:o}"),
        )
        .step(|| format!("mounting tmpfs on {target}"))?;
        let rel = sys::c_string(target.relative()).step(|| target.to_string())?;
        sys::open_in_root(self.root.as_fd(), &rel, libc::O_RDONLY | libc::O_DIRECTORY)
            .step(|| format!("opening {target}"))
    }

    /// Confines the process to the new root; the host's tree becomes unreachable.
    pub fn enter(self, allow_chroot_fallback: bool) -> Result<Confinement, Error> {
        drop(self.sources);
        enter(&self.path, allow_chroot_fallback)
    }
}

/// Mounts the root at the staging point; returns that path.
fn mount_root(source: &RootSource, sources: &mut Sources) -> Result<String, Error> {
    let dir = match source {
        RootSource::Tmpfs => None,
        RootSource::Directory(dir) => Some(dir),
    };
    tmpfs_or_tree(STAGING, c"mode=0755,size=1m", dir, sources, "the root")?;
    Ok(STAGING.to_owned())
}

/// Mounts at `at` a fresh tmpfs (with `tmpfs_data`), or, given a host
/// directory, that directory's detached tree.
pub(crate) fn tmpfs_or_tree(
    at: &str,
    tmpfs_data: &CStr,
    dir: Option<&AbsPath>,
    sources: &mut Sources,
    what: &str,
) -> Result<(), Error> {
    match dir {
        None => {
            let target = sys::c_string(at).step(|| at.to_owned())?;
            let flags = libc::MS_NOSUID | libc::MS_NODEV;
            sys::mount(
                Some(c"tmpfs"),
                &target,
                Some(c"tmpfs"),
                flags,
                Some(tmpfs_data),
            )
            .step(|| format!("mounting a tmpfs for {what}"))
        }
        Some(dir) => {
            let tree = sources.tree(dir)?;
            let target = open_path(at).step(|| format!("opening {at}"))?;
            sys::attach_tree(tree.as_fd(), target.as_fd())
                .step(|| format!("attaching {dir} as {what}"))
        }
    }
}

/// The steps that need nothing but the root: kernel filesystems, tmpfs,
/// symlinks, masks and sealing.
fn apply_kernel_step(step: &Step, root: &OwnedFd) -> Result<(), Error> {
    match step {
        Step::Bind { .. }
        | Step::DevNode(_)
        | Step::CopyFile { .. }
        | Step::Overlay { .. }
        | Step::CopyTree { .. }
        | Step::Secrets { .. } => Err(Error::Setup {
            step: format!("{step:?} needs host sources"),
            source: io::Error::from_raw_os_error(libc::EINVAL),
        }),
        Step::Tmpfs {
            target,
            size_bytes,
            mode,
            noexec,
        } => {
            let flags =
                libc::MS_NOSUID | libc::MS_NODEV | if *noexec { libc::MS_NOEXEC } else { 0 };
            let data = format!("mode={mode:o},size={size_bytes}");
            fs_mount(root, target, c"tmpfs", flags, &data)
                .step(|| format!("mounting tmpfs on {target}"))
        }
        Step::Symlink { target, link_to } => symlink(root, target, link_to)
            .step(|| format!("creating symlink {target} -> {link_to}")),
        Step::File { target, text } => {
            write_file(root, target, text).step(|| format!("writing {target}"))
        }
        Step::Proc { hide_pids } => fs_mount(
            root,
            &abs("/proc")?,
            c"proc",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            if *hide_pids { "hidepid=2" } else { "" },
        )
        .step(|| "mounting /proc".into()),
        Step::Sysfs => fs_mount(
            root,
            &abs("/sys")?,
            c"sysfs",
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            "",
        )
        .step(|| "mounting /sys".into()),
        Step::Devpts => fs_mount(
            root,
            &abs("/dev/pts")?,
            c"devpts",
            libc::MS_NOSUID | libc::MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620",
        )
        .step(|| "mounting /dev/pts".into()),
        Step::Mask(path) => mask(root, path).step(|| format!("masking {path}")),
        Step::ReadOnly(path) => read_only(root, path).step(|| format!("making {path} read-only")),
        Step::SealMount(path) => {
            let fd = open_in(root, path).step(|| format!("opening {path}"))?;
            sys::mount_setattr(fd.as_fd(), sys::MOUNT_ATTR_RDONLY, false)
                .step(|| format!("making {path} read-only"))
        }
        Step::SealRoot => sys::mount_setattr(root.as_fd(), sys::MOUNT_ATTR_RDONLY, false)
            .step(|| "making the root read-only".into()),
    }
}

fn abs(p: &str) -> Result<AbsPath, Error> {
    abs_io(p).step(|| p.to_owned())
}

fn open_in(root: &OwnedFd, path: &AbsPath) -> io::Result<OwnedFd> {
    sys::open_in_root(root.as_fd(), &sys::c_string(path.relative())?, libc::O_PATH)
}

/// Opens `path` inside `root`, creating it (and missing parents as
/// directories) when absent: a directory, or an empty file if `file`.
fn ensure(root: &OwnedFd, path: &AbsPath, file: bool) -> io::Result<OwnedFd> {
    match open_in(root, path) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        other => return other,
    }
    let parent_path = path
        .parent()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let parent = ensure(root, &parent_path, false)?;
    let name = sys::c_string(path.components().last().unwrap_or("."))?;
    let created = if file {
        sys::create_file_at(parent.as_fd(), &name)
    } else {
        sys::mkdirat(parent.as_fd(), &name, 0o755)
    };
    match created {
        Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
        _ => {}
    }
    open_in(root, path)
}

/// Sets `attrs` on the detached `tree`, then attaches it at `target`
/// (created if missing): it never appears with the wrong flags.
fn attach(root: &OwnedFd, tree: OwnedFd, target: &AbsPath, attrs: u64) -> io::Result<()> {
    let is_dir = sys::fstat(tree.as_fd())?.st_mode & libc::S_IFMT == libc::S_IFDIR;
    sys::mount_setattr(tree.as_fd(), attrs, true)?;
    let target_fd = ensure(root, target, !is_dir)?;
    sys::attach_tree(tree.as_fd(), target_fd.as_fd())
}

fn fs_mount(
    root: &OwnedFd,
    target: &AbsPath,
    fstype: &std::ffi::CStr,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let target_fd = ensure(root, target, false)?;
    let data = sys::c_string(data)?;
    sys::mount(
        Some(fstype),
        &fd_path(&target_fd)?,
        Some(fstype),
        flags,
        Some(&data),
    )
}

fn copy_file(root: &OwnedFd, source: BorrowedFd<'_>, target: &AbsPath) -> io::Result<()> {
    // The source was opened O_PATH; reopen it for reading through /proc,
    // which still shows the host's view before pivot_root.
    let from = std::fs::File::open(format!("/proc/self/fd/{}", source.as_raw_fd()))?;
    let st = sys::fstat(from.as_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_size as u64 > MAX_COPY_BYTES {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let to = create_file(root, target, 0o600)?;
    sys::copy_file_data(from.as_fd(), to.as_fd(), st.st_size as u64)?;
    sys::fchmod(to.as_fd(), st.st_mode & 0o7777)
}

/// Opens `target` in the new root for writing, created with `mode` if new.
fn create_file(root: &OwnedFd, target: &AbsPath, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let parent_path = target
        .parent()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let parent = ensure(root, &parent_path, false)?;
    let name = sys::c_string(target.components().last().unwrap_or("."))?;
    // O_TRUNC, not O_EXCL: a kept overlay root (--overlay-dir) already has
    // last run's file. open_at adds O_NOFOLLOW, so a planted link is refused.
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    sys::open_at(parent.as_fd(), &name, flags, mode)
}

fn write_file(root: &OwnedFd, target: &AbsPath, text: &str) -> io::Result<()> {
    let to = create_file(root, target, 0o644)?;
    io::Write::write_all(&mut std::fs::File::from(to), text.as_bytes())
}

fn symlink(root: &OwnedFd, target: &AbsPath, link_to: &str) -> io::Result<()> {
    let parent_path = target
        .parent()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let parent = ensure(root, &parent_path, false)?;
    let name = sys::c_string(target.components().last().unwrap_or("."))?;
    let to = sys::c_string(link_to)?;
    match sys::symlinkat(&to, parent.as_fd(), &name) {
        // A kept overlay root (--overlay-dir) has it from the last run.
        Err(e)
            if e.raw_os_error() == Some(libc::EEXIST)
                && sys::readlink_at(parent.as_fd(), &name).ok() == Some(to) =>
        {
            Ok(())
        }
        other => other,
    }
}

fn mask(root: &OwnedFd, path: &AbsPath) -> io::Result<()> {
    let fd = match open_in(root, path) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        other => other?,
    };
    if sys::fstat(fd.as_fd())?.st_mode & libc::S_IFMT == libc::S_IFDIR {
        sys::mount(
            Some(c"tmpfs"),
            &fd_path(&fd)?,
            Some(c"tmpfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some(c"size=0,mode=0555"),
        )
    } else {
        let null = open_in(root, &abs_io("/dev/null")?)?;
        let tree = sys::clone_tree(null.as_fd())?;
        sys::attach_tree(tree.as_fd(), fd.as_fd())
    }
}

fn read_only(root: &OwnedFd, path: &AbsPath) -> io::Result<()> {
    let fd = match open_in(root, path) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        other => other?,
    };
    let attrs = sys::MOUNT_ATTR_RDONLY
        | sys::MOUNT_ATTR_NOSUID
        | sys::MOUNT_ATTR_NODEV
        | sys::MOUNT_ATTR_NOEXEC;
    let tree = sys::clone_tree(fd.as_fd())?;
    sys::mount_setattr(tree.as_fd(), attrs, true)?;
    sys::attach_tree(tree.as_fd(), fd.as_fd())
}

fn abs_io(p: &str) -> io::Result<AbsPath> {
    AbsPath::try_from(p).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// pivot_root into the staging mount and detach the old root, so no path
/// from the host remains reachable. `pivot_root(".", ".")` stacks the old
/// root on top of the new one, and the lazy unmount then removes it.
fn enter(path: &str, allow_chroot_fallback: bool) -> Result<Confinement, Error> {
    std::env::set_current_dir(path).step(|| "entering the new root".into())?;
    match sys::pivot_root_here() {
        Ok(()) => {
            sys::umount_detach(c".").step(|| "detaching the old root".into())?;
            std::env::set_current_dir("/").step(|| "chdir to the new root".into())?;
            Ok(Confinement::PivotRoot)
        }
        // The child warns on stderr, as the plan allowed.
        Err(_) if allow_chroot_fallback => {
            sys::chroot(c".").step(|| "chroot into the new root".into())?;
            std::env::set_current_dir("/").step(|| "chdir to the new root".into())?;
            Ok(Confinement::Chroot)
        }
        Err(e) => Err(Error::Setup {
            step: "pivot_root into the new root (pass --allow-chroot-fallback in agent mode to chroot instead)".into(),
            source: e,
        }),
    }
}
