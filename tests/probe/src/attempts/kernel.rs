//! Kernel attack-surface attempts (bpf, keyrings, io_uring, userfaultfd,
//! perf, terminal injection) and network reachability.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use super::{Args, Outcome, Usage};
use crate::sys::{self, Errno, SysResult};

pub fn run(attempt: &str, a: &Args<'_>) -> Result<Outcome, Usage> {
    let outcome = match attempt {
        "bpf" => {
            a.count(0, 0)?;
            bpf_outcome(sys::bpf_prog_load_zeroed())
        }
        "keyctl" => {
            a.count(0, 0)?;
            Outcome::from_sys(sys::keyctl_session_keyring_id(), |id| {
                format!("session keyring {id}")
            })
        }
        "add-key" => {
            a.count(0, 0)?;
            Outcome::from_sys(sys::add_key_user(), |id| format!("key {id}"))
        }
        "io-uring-setup" => {
            a.count(0, 0)?;
            Outcome::from_sys(sys::io_uring_setup_one(), |fd| format!("ring fd {fd}"))
        }
        "userfaultfd" => {
            a.count(0, 0)?;
            Outcome::from_sys(sys::userfaultfd(), |fd| format!("userfaultfd {fd}"))
        }
        "perf-event-open" => {
            a.count(0, 0)?;
            Outcome::from_sys(sys::perf_event_open_task_clock(), |fd| {
                format!("task-clock event fd {fd}")
            })
        }
        "tiocsti" => {
            a.count(0, 0)?;
            Outcome::from_sys(sys::tiocsti(0), |()| "injected 'x' into fd 0".to_owned())
        }
        "tiocsti-high-bits" => {
            a.count(0, 0)?;
            Outcome::from_sys(sys::tiocsti_high_bits(0), |()| {
                "injected 'x' into fd 0 (request | 1<<32)".to_owned()
            })
        }
        "tioclinux" => {
            a.count(0, 1)?;
            let subcode = if a.rest().is_empty() { 0 } else { a.num(0)? };
            Outcome::from_sys(sys::tioclinux(0, subcode), |r| {
                format!("subcode {subcode} returned {r}")
            })
        }
        "connect-tcp" => {
            a.count(2, 2)?;
            let ip: IpAddr = a.num(0)?;
            connect_tcp(SocketAddr::new(ip, a.num(1)?))
        }
        _ => return Err(Usage(format!("unknown attempt {attempt:?}"))),
    };
    Ok(outcome)
}

/// A zeroed BPF_PROG_LOAD is invalid by design: what matters is whether
/// the syscall reached the verifier (EINVAL) or was refused (EPERM/ENOSYS).
pub fn bpf_outcome(res: SysResult<libc::c_long>) -> Outcome {
    match res {
        Ok(fd) => Outcome::success(format!("loaded program fd {fd}")),
        Err(e) if e.0 == libc::EPERM || e.0 == libc::ENOSYS => Outcome::failed("bpf", e),
        Err(e) => Outcome {
            ok: true,
            errno: Some(e.0),
            detail: format!("bpf reachable: {}", e.describe()),
        },
    }
}

/// Non-blocking connect with a one-second timeout.
fn connect_tcp(addr: SocketAddr) -> Outcome {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Ok(stream) => {
            let local = stream
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            Outcome::success(format!("connected to {addr} from {local}"))
        }
        Err(e) if e.raw_os_error().is_none() && e.kind() == ErrorKind::TimedOut => {
            Outcome::failed("connect", Errno(libc::ETIMEDOUT))
        }
        Err(e) => Outcome::io_failed("connect", &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpf_einval_means_reachable() {
        let o = bpf_outcome(Err(Errno(libc::EINVAL)));
        assert!(o.ok);
        assert_eq!(o.errno, Some(libc::EINVAL));
        let o = bpf_outcome(Err(Errno(libc::EPERM)));
        assert!(!o.ok);
        assert_eq!(o.errno, Some(libc::EPERM));
        assert!(!bpf_outcome(Err(Errno(libc::ENOSYS))).ok);
    }

    #[test]
    fn connect_to_closed_local_port_is_refused() {
        // Bind then drop a listener to find a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let o = connect_tcp(SocketAddr::from(([127, 0, 0, 1], port)));
        assert!(!o.ok);
        assert_eq!(o.errno, Some(libc::ECONNREFUSED));
    }
}
