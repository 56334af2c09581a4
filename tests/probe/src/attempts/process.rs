//! Namespace, process and credential attempts: can the sandbox make new
//! namespaces, join others, trace or signal outsiders, change ids or
//! capabilities, or reach another syscall ABI?

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use super::{Args, Outcome, Usage};
use crate::sys::{self, ChildReport, Errno};

pub fn run(attempt: &str, a: &Args<'_>) -> Result<Outcome, Usage> {
    let outcome = match attempt {
        "unshare-user" => {
            a.count(0, 0)?;
            Outcome::from_sys(sys::unshare(libc::CLONE_NEWUSER), |()| {
                "unshared".to_owned()
            })
        }
        "unshare-mount" => {
            a.count(0, 0)?;
            Outcome::from_sys(sys::unshare(libc::CLONE_NEWNS), |()| "unshared".to_owned())
        }
        "clone-newuser" => {
            a.count(0, 0)?;
            let res = sys::clone_and_reap(libc::c_long::from(libc::CLONE_NEWUSER));
            Outcome::from_sys(res, |st| format!("child {}", st.describe()))
        }
        "clone3" => {
            a.count(0, 1)?;
            let flags = match a.rest().first() {
                None => 0,
                Some(f) if f == "newuser" => libc::CLONE_NEWUSER as u64,
                Some(_) => return Err(a.usage()),
            };
            Outcome::from_sys(sys::clone3_and_reap(flags), |st| {
                format!("child {}", st.describe())
            })
        }
        "setns" => {
            a.count(1, 1)?;
            match File::open(a.path(0)?) {
                Ok(f) => match sys::setns(f.as_fd(), 0) {
                    Ok(()) => Outcome::success("joined"),
                    Err(e) => Outcome::failed("setns", e),
                },
                Err(e) => Outcome::io_failed("open", &e),
            }
        }
        "ptrace-attach" => {
            a.count(1, 1)?;
            Outcome::from_sys(sys::ptrace_attach_detach(a.num(0)?), |st| {
                format!("attached ({}), detached", st.describe())
            })
        }
        "ptrace-traceme" => {
            a.count(0, 0)?;
            Outcome::from_sys(sys::ptrace_traceme(), |()| "traced by parent".to_owned())
        }
        "x32-syscall" => {
            a.count(0, 0)?;
            foreign_abi(X32)
        }
        "i386-syscall" => {
            a.count(0, 0)?;
            foreign_abi(I386)
        }
        "setuid" => {
            a.count(1, 1)?;
            Outcome::from_sys(sys::setuid(a.num(0)?), |()| id_detail())
        }
        "setgid" => {
            a.count(1, 1)?;
            Outcome::from_sys(sys::setgid(a.num(0)?), |()| id_detail())
        }
        "sethostname" => {
            a.count(1, 1)?;
            Outcome::from_sys(sys::sethostname(a.os(0)?.as_bytes()), |()| {
                "hostname set".to_owned()
            })
        }
        "kill" => {
            a.count(2, 2)?;
            Outcome::from_sys(sys::kill(a.num(0)?, a.num(1)?), |()| "sent".to_owned())
        }
        "reboot" => {
            a.count(0, 0)?;
            Outcome::from_sys(sys::reboot_cad_off(), |()| "CAD off".to_owned())
        }
        "cap-raise" => {
            a.count(1, 1)?;
            Outcome::from_sys(sys::cap_ambient_raise(a.num(0)?), |()| {
                "raised in ambient set".to_owned()
            })
        }
        "exec" => {
            if a.rest().is_empty() {
                return Err(a.usage());
            }
            exec(a)?
        }
        _ => return Err(Usage(format!("unknown attempt {attempt:?}"))),
    };
    Ok(outcome)
}

fn id_detail() -> String {
    let (uid, gid, euid, egid) = sys::ids();
    format!("uid={uid} gid={gid} euid={euid} egid={egid}")
}

fn exec(a: &Args<'_>) -> Result<Outcome, Usage> {
    let path = a.cstr(0)?;
    let argv: Option<Vec<CString>> = a
        .rest()
        .iter()
        .map(|s| CString::new(s.as_bytes()).ok())
        .collect();
    let argv = argv.ok_or_else(|| a.usage())?;
    // Only returns on failure.
    Ok(Outcome::failed("execv", sys::execv(&path, &argv)))
}

/// A syscall through another ABI entry point, run in a child because a
/// seccomp filter may answer with SIGSYS or the kernel with SIGSEGV.
struct ForeignAbi {
    name: &'static str,
    #[cfg(target_arch = "x86_64")]
    call: fn() -> i64,
}

#[cfg(target_arch = "x86_64")]
const X32: ForeignAbi = ForeignAbi {
    name: "x32",
    call: sys::x32_getpid,
};
#[cfg(target_arch = "x86_64")]
const I386: ForeignAbi = ForeignAbi {
    name: "i386",
    call: sys::i386_getpid,
};
#[cfg(not(target_arch = "x86_64"))]
const X32: ForeignAbi = ForeignAbi { name: "x32" };
#[cfg(not(target_arch = "x86_64"))]
const I386: ForeignAbi = ForeignAbi { name: "i386" };

#[cfg(target_arch = "x86_64")]
fn foreign_abi(abi: ForeignAbi) -> Outcome {
    match sys::run_in_child(abi.call) {
        Ok(report) => foreign_abi_outcome(report),
        Err(e) => Outcome::failed(&format!("fork for {} getpid", abi.name), e),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn foreign_abi(abi: ForeignAbi) -> Outcome {
    Outcome {
        ok: false,
        errno: None,
        detail: format!("{} syscalls exist only on x86_64", abi.name),
    }
}

/// ok iff the call returned a non-negative value; a return in
/// -4095..=-1 is an errno; a child that died never returned.
pub fn foreign_abi_outcome(report: ChildReport) -> Outcome {
    let status = report.status.describe();
    match report.returned {
        Some(r) if r >= 0 => Outcome::success(format!("returned {r}; {status}")),
        Some(r) => {
            let errno = (-4095..0)
                .contains(&r)
                .then(|| i32::try_from(-r).ok())
                .flatten();
            let detail = match errno {
                Some(e) => format!("returned {r} ({}); {status}", Errno(e).describe()),
                None => format!("returned {r}; {status}"),
            };
            Outcome {
                ok: false,
                errno,
                detail,
            }
        }
        None => Outcome {
            ok: false,
            errno: None,
            detail: status,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::WaitStatus;

    #[test]
    fn foreign_abi_outcomes() {
        let ok = foreign_abi_outcome(ChildReport {
            returned: Some(42),
            status: WaitStatus::Exited(0),
        });
        assert!(ok.ok);
        assert_eq!(ok.detail, "returned 42; exited 0");

        let enosys = foreign_abi_outcome(ChildReport {
            returned: Some(-38),
            status: WaitStatus::Exited(0),
        });
        assert!(!enosys.ok);
        assert_eq!(enosys.errno, Some(libc::ENOSYS));
        assert_eq!(
            enosys.detail,
            "returned -38 (Function not implemented); exited 0"
        );

        let killed = foreign_abi_outcome(ChildReport {
            returned: None,
            status: WaitStatus::Signaled(31),
        });
        assert!(!killed.ok);
        assert_eq!(killed.errno, None);
        assert_eq!(killed.detail, "killed by signal 31");
    }
}
