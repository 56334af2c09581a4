//! cgroup v2 for one sandbox, inside the helper's own delegated subtree
//! (the unit's `Delegate=yes`): `<own>/user-<uid>/sandbox`, with the
//! plan's limits. The helper moves itself to `<own>/supervisor` first, as
//! cgroup v2 allows controllers only over cgroups without processes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use protocol::{Limits, MemoryLimit};

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
    /// Creates the sandbox's cgroup for `uid` under `root` (normally
    /// `/sys/fs/cgroup`) with `limits` applied.
    pub fn create(root: &Path, uid: u32, limits: &Limits) -> io::Result<SandboxCgroup> {
        let own = own_cgroup(root)?;
        let supervisor = own.join("supervisor");
        mkdir(&supervisor)?;
        write(
            &supervisor.join("cgroup.procs"),
            &std::process::id().to_string(),
        )?;
        // io only when asked: a kernel without it must not fail every launch.
        let controllers = if limits.io_weight.is_some() {
            "+memory +cpu +pids +io"
        } else {
            "+memory +cpu +pids"
        };
        write(&own.join("cgroup.subtree_control"), controllers)?;
        let user = own.join(format!("user-{uid}"));
        mkdir(&user)?;
        write(&user.join("cgroup.subtree_control"), controllers)?;
        let path = user.join("sandbox");
        mkdir(&path)?;
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

    /// Removes the (empty) cgroups: every failure is reported, none hides another.
    pub fn remove(self) -> Vec<io::Error> {
        [&self.path, &self.user]
            .into_iter()
            .filter_map(|p| {
                fs::remove_dir(p)
                    .err()
                    .map(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
            })
            .collect()
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
        // Busy while the user's other sandboxes run: not an error.
        let _ = fs::remove_dir(user);
    }
    errors
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
