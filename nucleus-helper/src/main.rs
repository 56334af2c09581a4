//! `nucleus-helper`: the privileged half of Nucleus. systemd starts it on
//! the first connection to `/run/nucleus/helper.sock`; it forks one child
//! per connection, which learns who connected from the kernel, decodes
//! and re-validates the caller's plan, checks every descriptor that came
//! with it, asks polkit, and runs the sandbox with the privileges the plan
//! needs. (Given one connection instead of the listening socket, as with
//! `Accept=yes` or in tests, it serves just that one.)
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

use std::os::fd::{AsFd, OwnedFd};

use sandbox::signals::{self, SignalFd};
use std::path::Path;
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
            "expected exactly one socket from systemd (socket activation, LISTEN_FDS=1)".into(),
        );
    }
    Ok(sys::take_listen_fd())
}

/// Connections served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 256;

fn main() -> ExitCode {
    let sock = match harden() {
        Ok(sock) => sock,
        Err(e) => {
            eprintln!("nucleus-helper: {e}");
            return ExitCode::from(2);
        }
    };
    if sys::is_listening(sock.as_fd()) {
        accept_loop(sock)
    } else {
        ExitCode::from(connection(sock))
    }
}

/// A child per connection, so that a launch costs a fork, not a new
/// systemd unit. This loop parses nothing and stays single-threaded (its
/// children fork sandboxes); each child is exactly a one-connection
/// helper. It never exits on its own: its children are the running
/// sandboxes' supervisors, and stopping the unit kills them.
fn accept_loop(listener: OwnedFd) -> ExitCode {
    // Children are born in the delegated subtree's supervisor cgroup, which
    // keeps the subtree's root free of processes (cgroup v2's rule for
    // enabling controllers below it).
    if let Err(e) = cgroup::enter_supervisor(Path::new(cgroup::ROOT)) {
        eprintln!("nucleus-helper: entering the supervisor cgroup: {e}");
        return ExitCode::from(2);
    }
    // Exited children are reaped as they exit (a signalfd, no handler).
    let exits = match SignalFd::block(&[libc::SIGCHLD]) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("nucleus-helper: watching for exited children: {e}");
            return ExitCode::from(2);
        }
    };
    let mut children = 0usize;
    loop {
        // At the cap, new connections wait in the listen queue.
        let watched = if children < MAX_CONNECTIONS {
            vec![exits.as_fd(), listener.as_fd()]
        } else {
            vec![exits.as_fd()]
        };
        let ready = match signals::wait_readable(&watched) {
            Ok(ready) => ready,
            Err(e) => {
                eprintln!("nucleus-helper: waiting for connections: {e}");
                return ExitCode::from(2);
            }
        };
        if ready[0] {
            let _ = exits.read();
            children = children.saturating_sub(sys::reap_children());
        }
        if ready.get(1) != Some(&true) {
            continue;
        }
        let conn = match sys::accept(listener.as_fd()) {
            Ok(conn) => conn,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("nucleus-helper: accepting a connection: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
        };
        match sys::fork() {
            Ok(sys::Forked::Child) => {
                drop(listener);
                if let Err(e) = exits.release() {
                    eprintln!("nucleus-helper: unblocking SIGCHLD: {e}");
                    std::process::exit(2);
                }
                std::process::exit(i32::from(connection(conn)));
            }
            Ok(sys::Forked::Parent(_)) => children += 1,
            Err(e) => eprintln!("nucleus-helper: forking for a connection: {e}"),
        }
    }
}

/// Serves one connection; the process's exit code.
fn connection(sock: OwnedFd) -> u8 {
    let peer = match peer::Peer::of(sock.as_fd()) {
        Ok(peer) => peer,
        Err(e) => {
            eprintln!("nucleus-helper: cannot identify the caller: {e}");
            return 2;
        }
    };
    if let Err(e) = sys::set_socket_timeouts(sock.as_fd(), SOCKET_TIMEOUT_SECS) {
        eprintln!("nucleus-helper: bounding the connection's reads: {e}");
        return 2;
    }
    let store = state::Store::open();
    if let Ok(store) = &store {
        manage::reconcile(store);
    }
    let mut conn = conn::Conn::new(sock);
    serve::serve(&mut conn, &peer, store);
    0
}
