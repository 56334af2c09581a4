//! Requests about running sandboxes, each on a connection of its own:
//! list the caller's, stop one. Another user's sandbox needs polkit's
//! `org.nucleus.manage-others` (root callers skip polkit). And, at every
//! helper start, the clean-up after instances that died without theirs.
//!
//! Safe for an untrusted caller because the only privileged act is a
//! signal, sent through a pidfd to the exact process (pid and start time)
//! that an HMAC-checked record names as the sandbox's PID 1.

use std::collections::HashMap;
use std::os::fd::AsFd;

use protocol::{Envelope, ErrorCode, Message, SandboxId, StopSignal};

use crate::audit::{self, Who};
use crate::conn::Conn;
use crate::peer::Peer;
use crate::serve::{refuse, Refusal};
use crate::state::{StateError, Store};
use crate::{cgroup, polkit, sys};

const MANAGE_OTHERS: &str = "org.nucleus.manage-others";
/// How long a stop waits after SIGTERM before SIGKILL (podman's default).
const STOP_GRACE_MS: i32 = 10_000;
/// How long to wait for the kernel to finish a SIGKILL.
const KILL_WAIT_MS: i32 = 5_000;

/// The caller's running sandboxes; everyone's for root.
pub fn list(conn: &mut Conn, peer: &Peer, store: &Store) -> Result<(), Refusal> {
    let ids = store
        .ids()
        .map_err(|e| refuse(ErrorCode::Internal, format!("listing sandboxes: {e}")))?;
    let sandboxes = ids
        .iter()
        .filter_map(|id| store.load(id).ok())
        .filter(|r| peer.uid == 0 || r.uid == peer.uid)
        .filter(|r| r.supervisor.open().is_some())
        .map(|r| r.info())
        .collect();
    conn.write(&Envelope::new(Message::Sandboxes(sandboxes)))
        .map_err(|e| refuse(ErrorCode::Internal, e.to_string()))
}

pub fn stop(
    conn: &mut Conn,
    peer: &Peer,
    store: &Store,
    id: &SandboxId,
    signal: StopSignal,
) -> Result<(), Refusal> {
    let subject = format!("sandbox={id}");
    let outcome = stop_checked(peer, store, id, signal);
    match &outcome {
        Ok(()) => audit::record(
            Who::Caller(peer),
            "stop",
            &subject,
            "allowed",
            &format!("{signal:?}"),
        ),
        Err(r) => audit::record(Who::Caller(peer), "stop", &subject, "denied", &r.message),
    }
    outcome?;
    conn.write(&Envelope::new(Message::Stopped))
        .map_err(|e| refuse(ErrorCode::Internal, e.to_string()))
}

fn stop_checked(
    peer: &Peer,
    store: &Store,
    id: &SandboxId,
    signal: StopSignal,
) -> Result<(), Refusal> {
    let record = match store.load(id) {
        Ok(record) => record,
        Err(StateError::NotFound) => {
            return Err(refuse(
                ErrorCode::NotFound,
                format!("no running sandbox {id} (see nucleus ps)"),
            ))
        }
        Err(e) => return Err(refuse(ErrorCode::Internal, format!("sandbox {id}: {e}"))),
    };
    if record.uid != peer.uid && peer.uid != 0 {
        let owner = record.uid.to_string();
        let details: HashMap<&str, &str> = [
            ("sandbox", record.name.as_ref().map_or("", |n| n.as_str())),
            ("sandbox_id", id.as_str()),
            ("owner_uid", owner.as_str()),
        ]
        .into();
        let denied = |why: String| {
            refuse(
                ErrorCode::Unauthorized,
                format!("sandbox {id} belongs to uid {owner}; {why}"),
            )
        };
        match polkit::first_denied(peer, &[MANAGE_OTHERS], &details) {
            Ok(None) if sys::pidfd_alive(peer.pidfd.as_fd()) => {}
            Ok(None) => return Err(denied("the caller exited during authorization".into())),
            Ok(Some(action)) => {
                return Err(denied(format!(
                    "polkit does not allow {action} for uid {}; an administrator can grant it",
                    peer.uid
                )))
            }
            Err(e) => return Err(denied(format!("cannot ask polkit: {e}"))),
        }
    }
    let Some(pidfd) = record.workload.open() else {
        return Err(refuse(
            ErrorCode::NotFound,
            format!("sandbox {id} has already ended"),
        ));
    };
    let pidfd = pidfd.as_fd();
    // The workload is PID 1 of its namespace: it gets SIGTERM only if it
    // handles it, so a stop always ends in SIGKILL after the grace period.
    let ended = signal == StopSignal::Term
        && sys::pidfd_send_signal(pidfd, libc::SIGTERM).is_ok()
        && sys::pidfd_wait_exit(pidfd, STOP_GRACE_MS);
    if !ended {
        sys::pidfd_send_signal(pidfd, libc::SIGKILL)
            .map_err(|e| refuse(ErrorCode::Internal, format!("killing sandbox {id}: {e}")))?;
        sys::pidfd_wait_exit(pidfd, KILL_WAIT_MS);
    }
    Ok(())
}

/// Records whose helper is gone (killed, crashed): their sandbox is
/// killed, its cgroup removed, the record deleted. A record that fails
/// its HMAC is renamed aside for an administrator, never acted on.
pub fn reconcile(store: &Store) {
    let Ok(ids) = store.ids() else { return };
    for id in ids {
        let subject = format!("sandbox={id}");
        match store.load(&id) {
            Ok(record) if record.supervisor.open().is_none() => {
                if let Some(pidfd) = record.workload.open() {
                    let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
                    sys::pidfd_wait_exit(pidfd.as_fd(), KILL_WAIT_MS);
                }
                let mut detail = String::from("its helper had exited");
                if let Some(path) = &record.cgroup {
                    for e in cgroup::remove_stale(path) {
                        detail.push_str(&format!("; {e}"));
                    }
                }
                if let Err(e) = store.remove(&id) {
                    detail.push_str(&format!("; removing its record: {e}"));
                }
                audit::record(Who::Helper, "reconcile", &subject, "removed", &detail);
            }
            Err(StateError::Tampered) => {
                let kept = store.quarantine(&id);
                audit::record(
                    Who::Helper,
                    "reconcile",
                    &subject,
                    "refused",
                    &format!("its state file fails its HMAC check; {kept}"),
                );
            }
            _ => {}
        }
    }
}
