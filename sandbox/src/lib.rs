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

mod caps;
mod child;
mod error;
mod exec;
mod idmap;
mod inputs;
mod landlock;
mod mounts;
mod net;
mod overlay;
pub mod pty;
mod rootfs;
pub mod signals;
mod sources;
mod supervise;
mod sys;
pub mod tree;

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

/// The `f_type` magic number of the filesystem holding `path`.
pub fn filesystem_magic(path: &std::path::Path) -> std::io::Result<i64> {
    sys::statfs_magic(path)
}
