//! Seccomp denials reported (`--violations`): the plan's program is
//! installed with each errno verdict turned into a user notification, and
//! the executor answers each one with the errno the plan's program gives
//! that call (run in userspace, `bpf::run`), so the workload sees what it
//! would have seen, then writes the system call to the violations file,
//! each once. No notification is ever answered with "continue": if the
//! executor is gone, the kernel fails the calls with ENOSYS.
//!
//! The sandbox installs the filter with a listener and must keep it until
//! the executor has taken a copy (`listener::grab`); nothing it does next
//! is sure to wait for the executor, so a prelude sends one marked call,
//! getpid(HANDOVER), to the listener: the sandbox makes it, and it
//! returns once the executor holds the listener and answers it.

use std::collections::HashSet;
use std::io::Write;
use std::thread::JoinHandle;

use protocol::SockFilter;

use crate::bpf::{self, insn, AUDIT_ARCH_X86_64, JEQ_K, LD_W_ABS, RET_K};
use crate::error::Error;
use crate::listener;
use crate::sys::{self, Notification};
use crate::syscalls;

/// getpid's first argument in the sandbox's handover call ("nucl").
pub const HANDOVER: u64 = 0x6e75_636c;
/// The kernel's limit on a program's length (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;
/// Distinct system calls reported at most (the native table has ~370).
const MAX_REPORTED: usize = 1024;

/// The plan's program as installed for the report: the handover prelude,
/// then `enforced` with every `return ERRNO(e)` made `return USER_NOTIF`.
pub fn program(enforced: &[SockFilter]) -> Result<Vec<SockFilter>, String> {
    // Any call but the handover falls through to the plan's program (at
    // index 7; jumps are relative to the next instruction).
    let mut program = vec![
        insn(LD_W_ABS, 0, 0, 4),
        insn(JEQ_K, 0, 5, AUDIT_ARCH_X86_64),
        insn(LD_W_ABS, 0, 0, 0),
        insn(JEQ_K, 0, 3, libc::SYS_getpid as u32),
        insn(LD_W_ABS, 0, 0, 16),
        insn(JEQ_K, 0, 1, HANDOVER as u32),
        insn(RET_K, 0, 0, libc::SECCOMP_RET_USER_NOTIF),
    ];
    program.extend(enforced.iter().map(|i| match i.code {
        RET_K if is_errno(i.k) => insn(RET_K, 0, 0, libc::SECCOMP_RET_USER_NOTIF),
        _ => *i,
    }));
    if program.len() > MAX_INSNS {
        return Err(format!(
            "the seccomp program has {} instructions: reporting its denials adds 7, past the kernel's {MAX_INSNS}",
            enforced.len()
        ));
    }
    Ok(program)
}

fn is_errno(verdict: u32) -> bool {
    verdict & libc::SECCOMP_RET_ACTION_FULL == libc::SECCOMP_RET_ERRNO
}

fn is_handover(call: &bpf::Call) -> bool {
    call.arch == AUDIT_ARCH_X86_64
        && i64::from(call.nr) == libc::SYS_getpid
        && call.args[0] as u32 == HANDOVER as u32
}

/// The errno the workload gets: the plan's own for an errno verdict; for
/// anything else (which the rewritten program never sends here) EPERM,
/// so nothing the report does ever lets a call through.
fn errno_for(enforced: &[SockFilter], call: &bpf::Call) -> i32 {
    let verdict = bpf::run(enforced, call);
    if is_errno(verdict) {
        (verdict & libc::SECCOMP_RET_DATA) as i32
    } else {
        libc::EPERM
    }
}

/// The (architecture, number) of each system call reported.
pub type Reported = HashSet<(u32, i32)>;

/// Answers the sandbox's notifications until it is gone, writing each
/// denied system call to `sink` once.
pub fn serve(
    listener: listener::Listener,
    enforced: Vec<SockFilter>,
    mut sink: std::fs::File,
) -> Result<JoinHandle<Reported>, Error> {
    listener::serve(
        listener,
        "seccomp-denials",
        Reported::new(),
        move |seen, fd, n| {
            let Notification { id, call, .. } = n;
            if is_handover(&call) {
                let _ = sys::notif_answer(fd, id, 0);
                return;
            }
            let errno = errno_for(&enforced, &call);
            // Answered first: the workload waits for this, not for the file.
            let _ = sys::notif_answer(fd, id, errno);
            if seen.len() < MAX_REPORTED && seen.insert((call.arch, call.nr)) {
                if let Err(e) = sink.write_all(line(&call, errno).as_bytes()) {
                    eprintln!("nucleus: warning: --violations: {e}");
                }
            }
        },
    )
}

/// `{"kind":"seccomp","syscall":"ptrace","nr":101,"arch":"x86_64","errno":1}`
fn line(call: &bpf::Call, errno: i32) -> String {
    let native = call.arch == AUDIT_ARCH_X86_64;
    let name = syscalls::name(call.nr)
        .filter(|_| native)
        .map_or("null".to_owned(), |n| format!("\"{n}\""));
    let arch = if native {
        "x86_64".to_owned()
    } else {
        format!("{:#x}", call.arch)
    };
    format!(
        "{{\"kind\":\"seccomp\",\"syscall\":{name},\"nr\":{},\"arch\":\"{arch}\",\"errno\":{errno}}}\n",
        call.nr
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(nr: i64, arg0: u64) -> bpf::Call {
        bpf::Call {
            nr: nr as i32,
            arch: AUDIT_ARCH_X86_64,
            instruction_pointer: 0,
            args: [arg0, 0, 0, 0, 0, 0],
        }
    }

    /// ptrace: EPERM; clone3: ENOSYS; getpid and the rest: allowed.
    fn enforced() -> Vec<SockFilter> {
        vec![
            insn(LD_W_ABS, 0, 0, 0),
            insn(JEQ_K, 0, 1, libc::SYS_ptrace as u32),
            insn(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | 1),
            insn(JEQ_K, 0, 1, libc::SYS_clone3 as u32),
            insn(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | 38),
            insn(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        ]
    }

    #[test]
    fn denials_go_to_the_listener_and_nothing_else_does() {
        let original = enforced();
        let rewritten = program(&original).unwrap();
        assert_eq!(rewritten.len(), original.len() + 7);
        let notify = libc::SECCOMP_RET_USER_NOTIF;
        for (nr, arg0, verdict, errno) in [
            (libc::SYS_ptrace, 0, notify, 1),
            (libc::SYS_clone3, 0, notify, 38),
            (libc::SYS_read, 0, libc::SECCOMP_RET_ALLOW, libc::EPERM),
            (libc::SYS_getpid, 0, libc::SECCOMP_RET_ALLOW, libc::EPERM),
            (libc::SYS_getpid, HANDOVER, notify, libc::EPERM),
        ] {
            assert_eq!(bpf::run(&rewritten, &call(nr, arg0)), verdict, "{nr}");
            assert_eq!(errno_for(&original, &call(nr, arg0)), errno, "{nr}");
        }
        assert!(is_handover(&call(libc::SYS_getpid, HANDOVER)));
        assert!(!is_handover(&call(libc::SYS_getppid, HANDOVER)));
        // The handover is x86_64's getpid only: on i386, 39 is mkdir.
        let mut i386 = call(libc::SYS_getpid, HANDOVER);
        i386.arch = 0x4000_0003;
        assert!(!is_handover(&i386));
        assert_eq!(bpf::run(&rewritten, &i386), libc::SECCOMP_RET_ALLOW);
    }

    #[test]
    fn a_program_at_the_limit_cannot_take_the_prelude() {
        let full = vec![enforced()[5]; MAX_INSNS - 6];
        assert!(program(&full).is_err());
        assert_eq!(program(&full[1..]).unwrap().len(), MAX_INSNS);
    }

    #[test]
    fn lines_name_the_call() {
        assert_eq!(
            line(&call(libc::SYS_ptrace, 0), 1),
            "{\"kind\":\"seccomp\",\"syscall\":\"ptrace\",\"nr\":101,\"arch\":\"x86_64\",\"errno\":1}\n"
        );
        assert_eq!(
            line(&call(999, 0), 38),
            "{\"kind\":\"seccomp\",\"syscall\":null,\"nr\":999,\"arch\":\"x86_64\",\"errno\":38}\n"
        );
    }
}
