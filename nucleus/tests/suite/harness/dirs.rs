//! Per-test directories under the fixture root.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{fixture, make_dir, Identity};

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A directory of one test under the fixture root, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new empty 0755 directory, owned by root.
    pub fn new(label: &str) -> TempDir {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let path = fixture().root.join("work").join(format!("{n}-{label}"));
        make_dir(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// `rel` as a new 0755 directory (parents included).
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let dir = self.path.join(rel);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
        dir
    }

    /// `rel` with `text`, mode 0644.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let file = self.path.join(rel);
        fs::write(&file, text).unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", file.display()));
        file
    }

    /// Gives the whole tree to `id` (symlinks themselves, not their
    /// targets).
    pub fn chown_all(&self, id: &Identity) {
        chown_tree(&self.path, id.uid, id.gid);
    }
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    let is_dir = fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    if is_dir {
        for entry in fs::read_dir(path).into_iter().flatten().flatten() {
            chown_tree(&entry.path(), uid, gid);
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Hands `path` to `id` (not recursive).
pub fn give(path: &Path, id: &Identity) {
    chown(path, Some(id.uid), Some(id.gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}
