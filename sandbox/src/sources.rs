//! Host sources of the mount steps, as descriptors: never a path resolved
//! after the staging mount exists.
//!
//! Rootless, the sandbox opens them itself (O_PATH, in its own mount
//! namespace, with the caller's rights) and clones a detached tree per
//! use. Under the privileged helper, the caller opened them and the helper
//! turned each into a detached tree before the fork (a mount of another
//! namespace cannot be cloned from inside a new one); those are attached
//! as they are.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use protocol::AbsPath;

use crate::error::{Context, Error};
use crate::sys;

#[derive(Debug)]
enum Source {
    /// O_PATH descriptor in this mount namespace.
    Opened(OwnedFd),
    /// Detached trees, one per use.
    Detached(Vec<OwnedFd>),
}

#[derive(Debug, Default)]
pub struct Sources {
    map: HashMap<AbsPath, Source>,
}

/// An O_PATH descriptor: names a file without opening it for I/O.
pub(crate) fn open_path(path: &str) -> io::Result<OwnedFd> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)?;
    Ok(file.into())
}

impl Sources {
    /// Adds trees the executor detached before the fork.
    pub fn add_detached(&mut self, trees: Vec<(AbsPath, OwnedFd)>) {
        for (path, tree) in trees {
            match self
                .map
                .entry(path)
                .or_insert_with(|| Source::Detached(Vec::new()))
            {
                Source::Detached(list) => list.push(tree),
                Source::Opened(_) => {}
            }
        }
    }

    /// Opens `path` (O_PATH) unless it is already provided.
    pub fn open_if_missing(&mut self, path: AbsPath) -> Result<(), Error> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.map.entry(path) {
            let fd = open_path(slot.key().as_str())
                .step(|| format!("opening host path {}", slot.key()))?;
            slot.insert(Source::Opened(fd));
        }
        Ok(())
    }

    fn missing(path: &AbsPath) -> Error {
        Error::Setup {
            step: format!("host path {path} was not provided"),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        }
    }

    /// A detached tree of `path` to attach somewhere.
    pub fn tree(&mut self, path: &AbsPath) -> Result<OwnedFd, Error> {
        match self.map.get_mut(path) {
            Some(Source::Opened(fd)) => {
                sys::clone_tree(fd.as_fd()).step(|| format!("cloning the mount tree of {path}"))
            }
            Some(Source::Detached(list)) => list.pop().ok_or_else(|| Self::missing(path)),
            None => Err(Self::missing(path)),
        }
    }

    /// A descriptor to read `path` through (reopen, openat).
    pub fn fd(&self, path: &AbsPath) -> Result<BorrowedFd<'_>, Error> {
        match self.map.get(path) {
            Some(Source::Opened(fd)) => Ok(fd.as_fd()),
            Some(Source::Detached(list)) => list
                .last()
                .map(|fd| fd.as_fd())
                .ok_or_else(|| Self::missing(path)),
            None => Err(Self::missing(path)),
        }
    }
}
