//! Seccomp trace mode (`--seccomp-mode trace`): instead of the profile, the
//! sandbox installs a filter that sends every system call of the native
//! architecture to a user-notification listener (others kill the
//! process, as the default profile does). The executor takes the listener
//! out of the sandbox with pidfd_getfd (the sandbox cannot hand it over:
//! its next system call already waits for an answer), and a thread answers
//! each call with "continue" and counts it. Works rootless and as root
//! (Linux 5.9+: pidfd_getfd and SECCOMP_USER_NOTIF_FLAG_CONTINUE).
//!
//! The record is NDJSON, one line per system call number, sorted:
//! `{"arch":"x86_64","nr":0,"count":12}`; `nucleus seccomp generate` names
//! them and writes a profile.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use protocol::SockFilter;

use crate::error::{Context, Error};
use crate::sys;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// How long the sandbox may take from the fork to its filter.
const GRAB_TIMEOUT: Duration = Duration::from_secs(30);

/// The trace filter: native calls to the listener, anything else killed.
pub fn program() -> Vec<SockFilter> {
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let insn = |code, jt, jf, k| SockFilter { code, jt, jf, k };
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

/// Takes the sandbox's listener once its filter is installed: its lowest
/// free descriptor (3, or 4 when the error pipe is 3) once it is a
/// seccomp listener. `exited` says whether the sandbox died meanwhile.
pub fn grab(pidfd: BorrowedFd<'_>, exited: impl Fn() -> bool) -> Result<OwnedFd, Error> {
    let deadline = Instant::now() + GRAB_TIMEOUT;
    while Instant::now() < deadline && !exited() {
        for fd in [3, 4] {
            let Ok(copy) = sys::pidfd_getfd(pidfd, fd) else {
                continue;
            };
            let link = std::fs::read_link(format!("/proc/self/fd/{}", copy.as_raw_fd()));
            if link.is_ok_and(|l| l.as_os_str() == "anon_inode:seccomp notify") {
                return Ok(copy);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(Error::Setup {
        step: "--seccomp-mode trace: taking the sandbox's seccomp listener".into(),
        source: std::io::Error::from_raw_os_error(libc::ETIMEDOUT),
    })
}

/// Answers and counts every system call until no process uses the filter.
pub fn serve(listener: OwnedFd) -> Result<JoinHandle<Seen>, Error> {
    std::thread::Builder::new()
        .name("seccomp-trace".into())
        .spawn(move || {
            let mut seen = BTreeMap::new();
            loop {
                let mut fds = [libc::pollfd {
                    fd: listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }];
                match sys::poll(&mut fds, -1) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                    Ok(_) => {}
                }
                if fds[0].revents & libc::POLLIN == 0 {
                    // POLLHUP: every task under the filter is gone.
                    break;
                }
                // ENOENT: the caller died between the two calls.
                let Ok((id, nr, arch)) = sys::notif_recv(listener.as_fd()) else {
                    continue;
                };
                *seen.entry((arch, nr)).or_insert(0) += 1;
                let _ = sys::notif_continue(listener.as_fd(), id);
            }
            seen
        })
        .step(|| "starting the seccomp trace thread".into())
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
