//! Small lifecycle commands the runtime's tests drive the probe with: exit
//! codes, sleeping, signals, and the controlling terminal.

use std::time::Duration;

use crate::attempts::Usage;
use crate::json::{Json, ObjBuilder};
use crate::sys;

/// `sleep SECS` (fractions allowed).
pub fn sleep(secs: &str) -> Result<(), Usage> {
    let secs: f64 = secs.parse().map_err(|_| usage("sleep SECS"))?;
    let dur = Duration::try_from_secs_f64(secs).map_err(|_| usage("sleep SECS"))?;
    std::thread::sleep(dur);
    Ok(())
}

/// `signal-self SIG`: dies by SIG (default action, unblocked). Returns the
/// JSON to print only if the signal's default action is to ignore it.
pub fn signal_self(sig: &str) -> Result<Json, Usage> {
    let sig: i32 = sig.parse().map_err(|_| usage("signal-self SIG"))?;
    match sys::raise_default(sig) {
        Ok(()) => Ok(ObjBuilder::new()
            .field("signal", sig)
            .field("survived", true)
            .build()),
        Err(e) => Err(Usage(format!("signal-self {sig}: {}", e.describe()))),
    }
}

/// `wait-signal`: handlers for SIGINT/SIGTERM/SIGHUP, then "ready" on
/// stdout, then sleep until one arrives. The signals are blocked before
/// the handlers go in, so none is lost between "ready" and the wait.
pub fn wait_signal(ready: impl FnOnce() -> bool) -> Result<Json, Usage> {
    let mask = sys::catch_signals(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP])
        .map_err(|e| Usage(format!("wait-signal: {}", e.describe())))?;
    if !ready() {
        return Err(Usage("wait-signal: cannot write to stdout".to_owned()));
    }
    let sig = sys::wait_for_signal(&mask);
    Ok(ObjBuilder::new().field("signal", sig).build())
}

/// `tty`: the terminal as the probe sees it. `tcgetpgrp` is -errno when
/// fd 0 is not a terminal; `sid` likewise.
pub fn tty() -> Json {
    let isatty = ObjBuilder::new()
        .field("0", sys::isatty(0))
        .field("1", sys::isatty(1))
        .field("2", sys::isatty(2))
        .build();
    let (pgrp, sid) = sys::pgrp_and_sid();
    ObjBuilder::new()
        .field("isatty", isatty)
        .field("ttyname", Json::opt(sys::ttyname(0).ok()))
        .field("tcgetpgrp", sys::tcgetpgrp(0).unwrap_or_else(|e| -e.0))
        .field("pgrp", pgrp)
        .field("sid", sid.unwrap_or_else(|e| -e.0))
        .field("pid", std::process::id())
        .build()
}

fn usage(spec: &str) -> Usage {
    Usage(format!("usage: nucleus-probe {spec}"))
}
