//! Seccomp trace mode (`--seccomp-mode trace`): instead of the profile, the
//! sandbox installs a filter that sends every system call of the native
//! architecture to a user-notification listener (others kill the
//! process, as the default profile does). The executor takes the listener
//! out of the sandbox (`listener::grab`), and a thread answers each call
//! with "continue" and counts it. Works rootless and as root
//! (Linux 5.9+: pidfd_getfd and SECCOMP_USER_NOTIF_FLAG_CONTINUE).
//!
//! The record is NDJSON, one line per system call number, sorted:
//! `{"arch":"x86_64","nr":0,"count":12}`; `nucleus seccomp generate` names
//! them and writes a profile.

use std::collections::BTreeMap;
use std::io::Write;
use std::thread::JoinHandle;

use protocol::SockFilter;

use crate::bpf::{insn, AUDIT_ARCH_X86_64, JEQ_K, LD_W_ABS, RET_K};
use crate::error::{Context, Error};
use crate::listener;
use crate::sys;

/// The trace filter: native calls to the listener, anything else killed.
pub fn program() -> Vec<SockFilter> {
    vec![
        // seccomp_data.arch
        insn(LD_W_ABS, 0, 0, 4),
        insn(JEQ_K, 0, 1, AUDIT_ARCH_X86_64),
        insn(RET_K, 0, 0, libc::SECCOMP_RET_USER_NOTIF),
        insn(RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
    ]
}

/// How many times each (architecture, system call number) was made.
pub type Seen = BTreeMap<(u32, i32), u64>;

/// Answers and counts every system call until no process uses the filter.
pub fn serve(listener: listener::Listener) -> Result<JoinHandle<Seen>, Error> {
    listener::serve(listener, "seccomp-trace", BTreeMap::new(), |seen, fd, n| {
        *seen.entry((n.call.arch, n.call.nr)).or_insert(0) += 1;
        let _ = sys::notif_continue(fd, n.id);
    })
}

/// The record, one NDJSON line per system call.
pub fn ndjson(seen: &Seen) -> String {
    seen.iter()
        .map(|((arch, nr), count)| {
            let arch = if *arch == AUDIT_ARCH_X86_64 {
                "x86_64".to_owned()
            } else {
                format!("{arch:#x}")
            };
            format!("{{\"arch\":\"{arch}\",\"nr\":{nr},\"count\":{count}}}\n")
        })
        .collect()
}

/// Writes the record to the caller's file.
pub fn write(mut to: std::fs::File, seen: &Seen) -> Result<(), Error> {
    to.write_all(ndjson(seen).as_bytes())
        .step(|| "--seccomp-log: writing the trace".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_is_sorted_ndjson() {
        let seen = BTreeMap::from([((AUDIT_ARCH_X86_64, 59), 1), ((AUDIT_ARCH_X86_64, 0), 12)]);
        assert_eq!(
            ndjson(&seen),
            "{\"arch\":\"x86_64\",\"nr\":0,\"count\":12}\n{\"arch\":\"x86_64\",\"nr\":59,\"count\":1}\n"
        );
    }

    #[test]
    fn the_filter_notifies_native_calls_and_kills_others() {
        let p = program();
        assert_eq!(p.len(), 4);
        assert_eq!(p[2].k, libc::SECCOMP_RET_USER_NOTIF);
        assert_eq!(p[3].k, libc::SECCOMP_RET_KILL_PROCESS);
    }
}
