//! polkit: `CheckAuthorization` over the system bus for the connected
//! process. Debian's polkit 122 takes a `unix-process` subject as pid +
//! start-time + uid; the helper holds the peer's pidfd while it asks, so
//! the pid names the caller and no other process.

use std::collections::HashMap;

use zbus::blocking::{Connection, Proxy};
use zbus::zvariant::Value;

use crate::peer::Peer;

/// The process's start time in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), which polkit uses to tell processes apart.
fn start_time(pid: libc::pid_t) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("reading /proc/{pid}/stat: {e}"))?;
    // The command name may contain spaces and parentheses: count from the last ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("malformed stat")?;
    after
        .split_whitespace()
        .nth(19)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| "no start time in stat".to_owned())
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
    let authority = Proxy::new(
        &conn,
        "org.freedesktop.PolicyKit1",
        "/org/freedesktop/PolicyKit1/Authority",
        "org.freedesktop.PolicyKit1.Authority",
    )
    .map_err(|e| e.to_string())?;
    let pid = u32::try_from(peer.pid).map_err(|e| e.to_string())?;
    let uid = i32::try_from(peer.uid).map_err(|e| e.to_string())?;
    let start = start_time(peer.pid)?;
    let flags: u32 = 0;
    for &action in actions {
        let mut subject: HashMap<&str, Value<'_>> = HashMap::new();
        subject.insert("pid", Value::U32(pid));
        subject.insert("start-time", Value::U64(start));
        subject.insert("uid", Value::I32(uid));
        let (allowed, _challenge, _details): (bool, bool, HashMap<String, String>) = authority
            .call(
                "CheckAuthorization",
                &(("unix-process", subject), action, details, flags, ""),
            )
            .map_err(|e| format!("polkit CheckAuthorization for {action}: {e}"))?;
        if !allowed {
            return Ok(Some(action));
        }
    }
    Ok(None)
}
