//! Overlay roots: the chosen root (a `--rootfs` directory, or each host
//! directory of the default root) becomes the read-only lower layer of an
//! overlayfs; writes land in a storage area, a tmpfs (gone with the
//! sandbox) or a host directory (`--overlay-dir`, kept).
//!
//! Storage layout: `upper/<layer>` and `work/<layer>` per layer, and
//! `root/`, the root directory itself when the root is a plain tmpfs.
//! Works in a user namespace (overlayfs allows unprivileged mounts, with
//! `userxattr`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use protocol::{AbsPath, OverlayUpper, RootSource};

use crate::error::{Context, Error};
use crate::rootfs;
use crate::sources::Sources;
use crate::sys;

/// The name of the `--rootfs` directory's layer.
pub const ROOTFS_LAYER: &str = "rootfs";

/// Mounts the storage at `storage` and the root below it; returns the
/// path of the root, a mount point ready for pivot_root.
pub fn mount_root(
    storage: &str,
    source: &RootSource,
    upper: &OverlayUpper,
    sources: &mut Sources,
) -> Result<String, Error> {
    let dir = match upper {
        OverlayUpper::Tmpfs => None,
        OverlayUpper::Directory(dir) => Some(dir),
    };
    rootfs::tmpfs_or_tree(storage, c"mode=0755", dir, sources, "the overlay storage")?;
    let store = std::fs::File::open(storage).step(|| "opening the overlay storage".into())?;
    for dir in ["upper", "work", "root"] {
        mkdir_exist_ok(store.as_fd(), dir)
            .step(|| format!("creating {dir}/ in the overlay storage"))?;
    }
    let root = format!("{storage}/root");
    match source {
        RootSource::Directory(dir) => {
            let lower = sources.fd(dir)?;
            mount_layer(storage, lower, &root, ROOTFS_LAYER)
                .step(|| format!("mounting the overlay over rootfs {dir}"))?;
        }
        // The root directory lives in the storage; bind it onto itself so
        // it is a mount point.
        RootSource::Tmpfs => {
            let r = sys::c_string(&root).step(|| root.clone())?;
            sys::mount(Some(&r), &r, None, libc::MS_BIND, None)
                .step(|| "binding the overlay root".into())?;
        }
    }
    Ok(root)
}

/// Mounts an overlay with `lower` as its lower layer on `target` (a path
/// or a `/proc/self/fd/N` of the target), with layer `name`'s upper and
/// work directories in the storage at `storage`.
pub fn mount_layer(
    storage: &str,
    lower: BorrowedFd<'_>,
    target: &str,
    name: &str,
) -> io::Result<()> {
    let store = std::fs::File::open(storage)?;
    for dir in ["upper", "work"] {
        let parent = sys::open_at(
            store.as_fd(),
            &sys::c_string(dir)?,
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )?;
        mkdir_exist_ok(parent.as_fd(), name)?;
    }
    let data = format!(
        "lowerdir=/proc/self/fd/{},upperdir={storage}/upper/{name},workdir={storage}/work/{name},userxattr",
        lower.as_raw_fd()
    );
    sys::mount(
        Some(c"overlay"),
        &sys::c_string(target)?,
        Some(c"overlay"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&sys::c_string(&data)?),
    )
}

/// A layer name for a target path: `/usr/lib` → `usr_lib`.
pub fn layer_name(target: &AbsPath) -> String {
    target.components().collect::<Vec<_>>().join("_")
}

fn mkdir_exist_ok(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    match sys::mkdirat(dir, &sys::c_string(name)?, 0o755) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_names_are_flat() {
        assert_eq!(layer_name(&AbsPath::try_from("/usr").unwrap()), "usr");
        assert_eq!(
            layer_name(&AbsPath::try_from("/etc/ssl").unwrap()),
            "etc_ssl"
        );
    }
}
