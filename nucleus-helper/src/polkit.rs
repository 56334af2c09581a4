//! polkit: `CheckAuthorization` over the system bus for the connected
//! process. Debian's polkit 122 takes a `unix-process` subject as pid +
//! start-time + uid (start time in clock ticks since boot, which polkit
//! uses to tell processes apart); the helper holds the peer's pidfd while
//! it asks, so the pid names the caller and no other process.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};

use zbus::blocking::Connection;
use zbus::zvariant::Value;

use crate::peer::Peer;
use crate::state::ProcId;
use crate::sys;

/// A polkit question asked by a child process: D-Bus brings threads, and
/// the helper must stay single-threaded to fork the sandbox. The child
/// asks while the helper prepares; its answer is read before the sandbox
/// exists. Dropped unanswered, the child is killed and reaped.
pub struct Pending {
    child: libc::pid_t,
    answer: File,
}

/// What polkit said.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Allowed,
    Denied(String),
    Failed(String),
}

/// Forks the child that asks polkit about `actions` for `peer`.
pub fn ask(peer: &Peer, actions: &[&str], details: &HashMap<&str, &str>) -> io::Result<Pending> {
    let (read, write) = sys::pipe()?;
    match sys::fork()? {
        sys::Forked::Child => {
            drop(read);
            let text = match first_denied(peer, actions, details) {
                Ok(None) => "allowed".to_owned(),
                Ok(Some(action)) => format!("denied {action}"),
                Err(e) => format!("failed {e}"),
            };
            let _ = File::from(write).write_all(text.as_bytes());
            sys::exit_now(0);
        }
        sys::Forked::Parent(child) => Ok(Pending {
            child,
            answer: File::from(read),
        }),
    }
}

impl Pending {
    pub fn answer(mut self) -> Answer {
        let mut text = String::new();
        if let Err(e) = self.answer.read_to_string(&mut text) {
            return Answer::Failed(format!("reading the answer: {e}"));
        }
        match text.split_once(' ').unwrap_or((text.as_str(), "")) {
            ("allowed", "") => Answer::Allowed,
            ("denied", action) => Answer::Denied(action.to_owned()),
            ("failed", why) => Answer::Failed(why.to_owned()),
            _ => Answer::Failed("the asking process died".to_owned()),
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Exited already (answered) or not: either way it is reaped here.
        let _ = sys::kill(self.child, libc::SIGKILL);
        let _ = sys::wait_pid(self.child);
    }
}

/// The first of `actions` polkit does not allow `peer`, if any, with
/// `details` for admins' rules. One bus connection and one subject for all
/// of them. Never interactive: the helper has nobody to ask.
pub fn first_denied<'a>(
    peer: &Peer,
    actions: &[&'a str],
    details: &HashMap<&str, &str>,
) -> Result<Option<&'a str>, String> {
    let conn = Connection::system().map_err(|e| format!("connecting to the system bus: {e}"))?;
    let pid = u32::try_from(peer.pid).map_err(|e| e.to_string())?;
    let uid = i32::try_from(peer.uid).map_err(|e| e.to_string())?;
    let start = ProcId::of(peer.pid)
        .map_err(|e| format!("reading the caller's start time: {e}"))?
        .start;
    let flags: u32 = 0;
    for &action in actions {
        let mut subject: HashMap<&str, Value<'_>> = HashMap::new();
        subject.insert("pid", Value::U32(pid));
        subject.insert("start-time", Value::U64(start));
        subject.insert("uid", Value::I32(uid));
        // A plain method call: a proxy would first subscribe to property
        // changes, one more round trip for nothing.
        let reply = conn
            .call_method(
                Some("org.freedesktop.PolicyKit1"),
                "/org/freedesktop/PolicyKit1/Authority",
                Some("org.freedesktop.PolicyKit1.Authority"),
                "CheckAuthorization",
                &(("unix-process", subject), action, details, flags, ""),
            )
            .map_err(|e| format!("polkit CheckAuthorization for {action}: {e}"))?;
        let (allowed, _challenge, _details): (bool, bool, HashMap<String, String>) = reply
            .body()
            .deserialize()
            .map_err(|e| format!("polkit's answer for {action}: {e}"))?;
        if !allowed {
            return Ok(Some(action));
        }
    }
    Ok(None)
}
