//! Detached mount trees of the caller's descriptors.
//!
//! A mount can only be cloned (open_tree) from inside its own mount
//! namespace, and systemd gives the helper a private one (ProtectSystem=).
//! So a short-lived child joins the caller's mount namespace (through the
//! namespace descriptor the caller sent: no ptrace right over the caller
//! is needed), clones each descriptor into a detached tree, hands the trees
//! back and exits. It resolves no path there: open_tree works on the
//! descriptor alone, so whatever that namespace contains cannot steer it.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use crate::sys;

/// In the child: join, clone, send each tree after a `T`; on failure send
/// `E` and the reason.
fn clone_all(mount_ns: &OwnedFd, fds: &[OwnedFd], back: &UnixStream) -> Result<(), String> {
    sys::join_mount_namespace(mount_ns.as_fd())
        .map_err(|e| format!("joining the caller's mount namespace: {e}"))?;
    for fd in fds {
        let tree = sandbox::detach_tree(fd.as_fd()).map_err(|e| format!("open_tree: {e}"))?;
        sandbox::signals::send_with_fds(back.as_fd(), b"T", &[tree.as_fd()])
            .map_err(|e| format!("handing a tree back: {e}"))?;
    }
    Ok(())
}

pub fn detach_in_callers_namespace(
    mount_ns: &OwnedFd,
    fds: &[OwnedFd],
) -> Result<Vec<OwnedFd>, String> {
    // A stream, not datagrams: if the child dies early, the parent reads EOF.
    let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socket pair: {e}"))?;
    match sys::fork().map_err(|e| format!("fork: {e}"))? {
        sys::Forked::Child => {
            drop(ours);
            if let Err(reason) = clone_all(mount_ns, fds, &theirs) {
                let _ = (&theirs).write_all(format!("E{reason}").as_bytes());
                sys::exit_now(1);
            }
            sys::exit_now(0)
        }
        sys::Forked::Parent(pid) => {
            drop(theirs);
            let mut trees = Vec::with_capacity(fds.len());
            let mut failure = String::new();
            for _ in fds {
                let mut tag = [0u8; 1];
                match sys::recv_with_fds(ours.as_fd(), &mut tag) {
                    Ok((1, mut got, false)) if tag == *b"T" && got.len() == 1 => {
                        trees.append(&mut got)
                    }
                    Ok((1, _, _)) if tag == *b"E" => {
                        let _ = (&ours).read_to_string(&mut failure);
                        break;
                    }
                    _ => break,
                }
            }
            let status =
                sys::wait_pid(pid).map_err(|e| format!("waiting for the detaching child: {e}"))?;
            if status != 0 || trees.len() != fds.len() {
                return Err(format!(
                    "could not take the caller's mounts: {failure} (status {status})"
                ));
            }
            Ok(trees)
        }
    }
}
