//! The Linux mechanics of a Nucleus sandbox: namespaces, id maps, the root
//! filesystem and pivot_root, capabilities, no_new_privs, Landlock, seccomp,
//! the terminal and the supervision of the workload. One module per
//! mechanism; each applies its part of a [`protocol::Plan`] and decides
//! nothing the plan does not say.
//!
//! Trust level: used by the unprivileged front end (rootless: everything
//! happens inside a user namespace the caller owns) and by the privileged
//! helper for other users' plans. It must therefore never resolve a plan
//! path outside the sandbox's root or with more authority than the plan's
//! owner has. All `unsafe` lives in [`sys`]. This crate never installs a
//! logger; it emits `tracing` events.

mod bpf;
mod bridge;
mod caps;
mod child;
mod denials;
mod dns;
mod egress;
mod error;
mod exec;
mod firewall;
mod idmap;
mod init;
mod inputs;
mod landlock;
mod listener;
mod mountaudit;
mod mounts;
mod net;
mod nflog;
mod overlay;
pub mod pty;
mod rootfs;
pub mod signals;
mod sources;
mod supervise;
mod sys;
pub mod syscalls;
mod tools;
mod trace;
pub mod tree;
mod uplink;
mod userspace;

pub use error::Error;
pub use inputs::{Inputs, SyncBack};
pub use supervise::{run, Control, Hooks, Outcome};
/// Turns a caller's descriptor into a detached mount tree (privileged
/// executors, before the fork).
pub use sys::clone_tree as detach_tree;

/// The calling process's real uid and gid.
pub fn caller_ids() -> (u32, u32) {
    (sys::getuid(), sys::getgid())
}

/// The start time of a live (not zombie) process: field 22 of
/// /proc/PID/stat, clock ticks after boot. With the pid it names one
/// process; a recycled pid has another. The process name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last ')'.
pub fn live_start_time(pid: libc::pid_t) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// The `f_type` magic number of the filesystem holding `path`.
pub fn filesystem_magic(path: &std::path::Path) -> std::io::Result<i64> {
    sys::statfs_magic(path)
}
