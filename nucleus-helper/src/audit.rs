//! One line per decision: who asked, for what, the decision and why. It
//! goes to the journal (stderr) and is appended to the audit file (the
//! unit's `LogsDirectory=`, root-only), one write per line so concurrent
//! helpers never interleave within a line.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::peer::Peer;

pub const LOG: &str = "/var/log/nucleus/audit.log";

/// Who a decision was made for: a caller, or the helper itself (cleaning
/// up after a crashed instance).
#[derive(Clone, Copy)]
pub enum Who<'a> {
    Caller(&'a Peer),
    Helper,
}

/// `subject` names what was acted on: `plan=sha256:...` or `sandbox=ID`.
pub fn record(who: Who<'_>, action: &str, subject: &str, decision: &str, detail: &str) {
    let who = match who {
        Who::Caller(peer) => format!("uid={} pid={}", peer.uid, peer.pid),
        Who::Helper => "uid=- pid=-".to_owned(),
    };
    let line = format!("{who} action={action} {subject} decision={decision} detail={detail:?}");
    eprintln!("nucleus-helper: audit {line}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let appended = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(LOG)
        .and_then(|mut f| f.write_all(format!("time={now} {line}\n").as_bytes()));
    if let Err(e) = appended {
        eprintln!("nucleus-helper: cannot append to {LOG}: {e}");
    }
}
