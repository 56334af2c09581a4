//! cgroup v2 for one sandbox, inside the helper's own delegated subtree
//! (the unit's `Delegate=yes`): `<unit>/user-<uid>/<sandbox id>`, with
//! the plan's limits. The helper's processes live in `<unit>/supervisor`,
//! as cgroup v2 allows controllers only over cgroups without processes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use protocol::{Limits, MemoryLimit, SandboxId};

/// The limit files for `limits`, exactly as written.
pub fn limit_files(limits: &Limits) -> Vec<(&'static str, String)> {
    let mut files = Vec::new();
    if let Some(MemoryLimit::Bytes(bytes)) = limits.memory {
        files.push(("memory.max", bytes.to_string()));
        // A memory limit that swap can dodge is no limit.
        files.push(("memory.swap.max", "0".to_owned()));
    }
    if let Some(cpus) = limits.cpus {
        // Quota per 100 ms period: 1.5 CPUs = 150000 us.
        files.push(("cpu.max", format!("{} 100000", u64::from(cpus.get()) * 100)));
    }
    if let Some(pids) = limits.pids {
        files.push(("pids.max", pids.get().to_string()));
    }
    if let Some(weight) = limits.io_weight {
        files.push(("io.weight", format!("default {}", weight.get())));
    }
    files
}

#[derive(Debug)]
pub struct SandboxCgroup {
    user: PathBuf,
    path: PathBuf,
}

/// Where cgroup v2 is mounted.
pub const ROOT: &str = "/sys/fs/cgroup";
const SUPERVISOR: &str = "supervisor";

/// The root of the helper's delegated subtree: its unit's cgroup, which
/// is this process's own unless it is in the supervisor cgroup already.
fn delegated(root: &Path) -> io::Result<PathBuf> {
    let own = own_cgroup(root)?;
    Ok(match own.parent() {
        Some(unit) if own.file_name().is_some_and(|n| n == SUPERVISOR) => unit.to_owned(),
        _ => own,
    })
}

/// Moves this process into `<unit>/supervisor`.
pub fn enter_supervisor(root: &Path) -> io::Result<()> {
    let supervisor = delegated(root)?.join(SUPERVISOR);
    mkdir(&supervisor)?;
    write(
        &supervisor.join("cgroup.procs"),
        &std::process::id().to_string(),
    )
}

/// This process's cgroup, from `/proc/self/cgroup` (the v2 line).
fn own_cgroup(root: &Path) -> io::Result<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup")?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no cgroup v2 entry in /proc/self/cgroup",
            )
        })?;
    Ok(root.join(rel.trim_start_matches('/')))
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn mkdir(path: &Path) -> io::Result<()> {
    match fs::create_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

impl SandboxCgroup {
    /// Creates the cgroup of sandbox `id` for `uid` under `root`
    /// (normally `/sys/fs/cgroup`) with `limits` applied.
    pub fn create(
        root: &Path,
        uid: u32,
        id: &SandboxId,
        limits: &Limits,
    ) -> io::Result<SandboxCgroup> {
        enter_supervisor(root)?;
        let own = delegated(root)?;
        // io only when asked: a kernel without it must not fail every launch.
        let controllers = if limits.io_weight.is_some() {
            "+memory +cpu +pids +io"
        } else {
            "+memory +cpu +pids"
        };
        write(&own.join("cgroup.subtree_control"), controllers)?;
        let user = own.join(format!("user-{uid}"));
        let path = user.join(id.as_str());
        // Another of the user's sandboxes may remove `user` as it ends,
        // between the two mkdirs: then start over.
        let mut made = Err(io::Error::from(io::ErrorKind::NotFound));
        for _ in 0..3 {
            made = mkdir(&user)
                .and_then(|()| write(&user.join("cgroup.subtree_control"), controllers))
                .and_then(|()| mkdir(&path));
            if !matches!(&made, Err(e) if e.kind() == io::ErrorKind::NotFound) {
                break;
            }
        }
        made?;
        let cgroup = SandboxCgroup { user, path };
        for (file, value) in limit_files(limits) {
            write(&cgroup.path.join(file), &value)?;
        }
        Ok(cgroup)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn add(&self, pid: libc::pid_t) -> io::Result<()> {
        write(&self.path.join("cgroup.procs"), &pid.to_string())
    }

    /// Whether the kernel OOM-killed something in the sandbox.
    pub fn oom_killed(&self) -> bool {
        fs::read_to_string(self.path.join("memory.events"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .is_some_and(|n| n > 0)
    }

    /// Removes the (empty) sandbox cgroup, and the user's if it was the
    /// last: every failure is reported, none hides another.
    pub fn remove(self) -> Vec<io::Error> {
        let mut errors = Vec::new();
        if let Err(e) = fs::remove_dir(&self.path) {
            errors.push(io::Error::new(
                e.kind(),
                format!("{}: {e}", self.path.display()),
            ));
        }
        remove_user_if_unused(&self.user, &mut errors);
        errors
    }
}

/// The cgroup of a sandbox whose helper died: whatever still runs in it
/// is killed (cgroup.kill), then it and its user-UID parent are removed
/// if empty. Every failure is reported.
pub fn remove_stale(path: &Path) -> Vec<io::Error> {
    if let Err(e) = fs::write(path.join("cgroup.kill"), "1") {
        if e.kind() == io::ErrorKind::NotFound {
            return Vec::new();
        }
    }
    let mut errors = Vec::new();
    // The kill is asynchronous: give the kernel a moment to empty it.
    let mut removed = fs::remove_dir(path);
    for _ in 0..50 {
        if removed.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        removed = fs::remove_dir(path);
    }
    if let Err(e) = removed {
        errors.push(io::Error::new(e.kind(), format!("{}: {e}", path.display())));
    }
    if let Some(user) = path.parent().filter(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("user-"))
    }) {
        remove_user_if_unused(user, &mut errors);
    }
    errors
}

/// A user's cgroup goes with their last sandbox; while others run it is
/// busy, which is no error.
fn remove_user_if_unused(user: &Path, errors: &mut Vec<io::Error>) {
    match fs::remove_dir(user) {
        Err(e)
            if !matches!(
                e.raw_os_error(),
                Some(libc::EBUSY | libc::ENOTEMPTY | libc::ENOENT)
            ) =>
        {
            errors.push(io::Error::new(e.kind(), format!("{}: {e}", user.display())));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{IoWeight, MilliCpus, PidsLimit};

    #[test]
    fn limit_files_are_exact() {
        let limits = Limits {
            timeout: None,
            memory: Some(MemoryLimit::Bytes(64 << 20)),
            cpus: Some(MilliCpus::try_from(1500).unwrap()),
            pids: Some(PidsLimit::try_from(50).unwrap()),
            io_weight: Some(IoWeight::try_from(500).unwrap()),
        };
        assert_eq!(
            limit_files(&limits),
            vec![
                ("memory.max", "67108864".to_owned()),
                ("memory.swap.max", "0".to_owned()),
                ("cpu.max", "150000 100000".to_owned()),
                ("pids.max", "50".to_owned()),
                ("io.weight", "default 500".to_owned()),
            ]
        );
    }
}
