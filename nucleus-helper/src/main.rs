//! `nucleus-helper`: the privileged half of Nucleus. systemd starts one
//! instance per connection on `/run/nucleus/helper.sock`; the instance
//! learns who connected from the kernel, decodes and re-validates the
//! caller's plan, checks every descriptor that came with it, asks polkit,
//! and runs the sandbox with the privileges the plan needs.
//!
//! Trust level: root (with the capability set its unit grants) acting for
//! an unprivileged caller. It must never believe an id in a payload, never
//! resolve a path the caller supplied, never parse user formats (no CLI,
//! TOML or JSON parser, no async runtime), and never leave a sandbox,
//! cgroup or mount behind.

mod audit;
mod ceilings;
mod cgroup;
mod conn;
mod detach;
mod hmac;
mod launch;
mod manage;
mod peer;
mod polkit;
mod serve;
mod state;
mod sys;

use std::os::fd::AsFd;
use std::process::ExitCode;

/// The longest a read or write on the caller's socket may block.
const SOCKET_TIMEOUT_SECS: libc::time_t = 30;

/// The first thing the process does: nothing inherited from whoever
/// started it survives but the socket systemd passed.
fn harden() -> Result<std::os::fd::OwnedFd, String> {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<libc::pid_t>().ok())
        == Some(sys::getpid());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok());
    sys::close_from(sys::LISTEN_FDS_START + if ours { count.unwrap_or(0).max(0) } else { 0 })
        .map_err(|e| format!("closing inherited descriptors: {e}"))?;
    for (key, _) in std::env::vars_os() {
        std::env::remove_var(key);
    }
    sys::no_dumps().map_err(|e| format!("disabling core dumps: {e}"))?;
    sys::drop_supplementary_groups().map_err(|e| format!("dropping supplementary groups: {e}"))?;
    if !ours || count != Some(1) {
        return Err(
            "expected exactly one connection from systemd (Accept=yes socket activation)".into(),
        );
    }
    Ok(sys::take_listen_fd())
}

fn main() -> ExitCode {
    let sock = match harden() {
        Ok(sock) => sock,
        Err(e) => {
            eprintln!("nucleus-helper: {e}");
            return ExitCode::from(2);
        }
    };
    let peer = match peer::Peer::of(sock.as_fd()) {
        Ok(peer) => peer,
        Err(e) => {
            eprintln!("nucleus-helper: cannot identify the caller: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = sys::set_socket_timeouts(sock.as_fd(), SOCKET_TIMEOUT_SECS) {
        eprintln!("nucleus-helper: bounding the connection's reads: {e}");
        return ExitCode::from(2);
    }
    let store = state::Store::open();
    if let Ok(store) = &store {
        manage::reconcile(store);
    }
    let mut conn = conn::Conn::new(sock);
    serve::serve(&mut conn, &peer, store);
    ExitCode::SUCCESS
}
