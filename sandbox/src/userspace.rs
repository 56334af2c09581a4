//! The userspace NATs of `--network bridge`: pasta (preferred) or
//! slirp4netns, started by the executor as itself (rootless: the caller)
//! once the sandbox has handed over its network namespace. The tool puts a
//! tap device in the sandbox, configures it, and carries the traffic
//! through ordinary sockets on the host; the host's loopback is reachable
//! at the gateway's address (pasta: the host's gateway; slirp4netns:
//! 10.0.2.2), subject to the egress rules like any other destination.
//!
//! The tool runs in the foreground as the executor's child and is killed
//! with it (parent-death signal), so a crashed executor leaves no NAT
//! behind; readiness is a descriptor the tool writes to once the
//! namespace is configured.

use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::{Child, Stdio};

use protocol::{NatBackend, PublishedPort};

use crate::error::Error;
use crate::sys;
use crate::tools::{failed, tool, Inside};

/// How long a tool may take to configure the namespace.
const READY_TIMEOUT_MS: libc::c_int = 10_000;

/// A running userspace NAT, stopped by `stop`.
pub struct Running {
    child: Child,
}

/// Starts `backend`'s tool for the sandbox `inside`, forwarding `ports`.
pub fn start(
    backend: &NatBackend,
    ports: &[PublishedPort],
    inside: &Inside<BorrowedFd<'_>>,
) -> Result<Running, Error> {
    let entered = inside.enter()?;
    // Joined even by root: the tools drop to an unprivileged user first,
    // who has rights in the sandbox's namespaces only through it.
    let userns = inside.userns_path();
    let step = || format!("--nat-backend {}", name(backend));
    let (ready_read, ready_write) = sys::pipe().map_err(|e| failed(step(), e.to_string()))?;
    let ready =
        sys::dup_inheritable(ready_write.as_fd()).map_err(|e| failed(step(), e.to_string()))?;
    drop(ready_write);
    let ready_fd = ready.as_raw_fd();
    let program = name(backend);
    let mut cmd = tool(program);
    match backend {
        NatBackend::Pasta => {
            // -T/-U none: nothing bound on the host's loopback is forwarded
            // into the sandbox's (pasta's default would mirror it).
            cmd.args(["--config-net", "--foreground", "--quiet"])
                .args(["--netns", &entered.netns_path])
                .args(["--pid", &format!("/proc/self/fd/{ready_fd}")])
                .args(["-T", "none", "-U", "none"])
                .args(["--userns", &userns]);
            if sys::geteuid() == 0 {
                // pasta would drop to nobody, who cannot join the sandbox's
                // namespaces; it still isolates itself after setup.
                cmd.args(["--runas", "0:0"]);
            }
            cmd.args(pasta_ports(ports));
        }
        NatBackend::Slirp4netns => {
            cmd.args(["--configure", "--mtu=65520", "--enable-seccomp"])
                .arg(format!("--ready-fd={ready_fd}"))
                .arg("--netns-type=path")
                .arg(format!("--userns-path={userns}"));
            cmd.args([entered.netns_path.as_str(), "tap0"]);
        }
        NatBackend::Kernel(_) => {
            return Err(failed(step(), "the kernel backend is not a userspace NAT"))
        }
    }
    // Its messages, read back only if it fails: a file never blocks it.
    let log =
        File::from(sys::memfd(c"nucleus-nat-log").map_err(|e| failed(step(), e.to_string()))?);
    let log_for_child = log.try_clone().map_err(|e| failed(step(), e.to_string()))?;
    sys::die_with_parent(&mut cmd);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_for_child))
        .spawn()
        .map_err(|e| failed(step(), format!("{e} (is {program} installed?)")))?;
    drop((ready, entered));
    let mut running = Running { child };
    match wait_ready(ready_read) {
        Ok(true) => Ok(running),
        outcome => {
            running.stop();
            let mut text = String::new();
            let mut log = log;
            let _ = log.rewind().and_then(|()| log.read_to_string(&mut text));
            let why = match outcome {
                Err(e) => e.to_string(),
                Ok(_) if text.trim().is_empty() => {
                    format!("{program} exited before the network was up")
                }
                Ok(_) => text.trim().to_owned(),
            };
            Err(failed(step(), why))
        }
    }
}

fn name(backend: &NatBackend) -> &'static str {
    match backend {
        NatBackend::Pasta => "pasta",
        NatBackend::Slirp4netns => "slirp4netns",
        NatBackend::Kernel(_) => "kernel",
    }
}

/// pasta's `-t`/`-u` options: `[ADDR/]HOST_PORT:PORT`, and `none` for a
/// protocol with nothing published.
fn pasta_ports(ports: &[PublishedPort]) -> Vec<String> {
    let mut args = Vec::new();
    for (flag, proto) in [("-t", protocol::Proto::Tcp), ("-u", protocol::Proto::Udp)] {
        let specs: Vec<String> = ports
            .iter()
            .filter(|p| p.proto == proto)
            .map(|p| match p.host_ip {
                Some(ip) => format!("{ip}/{}:{}", p.host_port, p.port),
                None => format!("{}:{}", p.host_port, p.port),
            })
            .collect();
        if specs.is_empty() {
            args.extend([flag.to_owned(), "none".to_owned()]);
        }
        for spec in specs {
            args.extend([flag.to_owned(), spec]);
        }
    }
    args
}

/// Whether the tool wrote to its readiness descriptor (false: it closed
/// it, by exiting, without a word).
fn wait_ready(ready: OwnedFd) -> std::io::Result<bool> {
    let mut fds = [libc::pollfd {
        fd: ready.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    if sys::poll(&mut fds, READY_TIMEOUT_MS)? == 0 {
        return Err(std::io::Error::other(format!(
            "not ready after {} s",
            READY_TIMEOUT_MS / 1000
        )));
    }
    let mut byte = [0u8; 1];
    Ok(File::from(ready).read(&mut byte)? == 1)
}

impl Running {
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU16;

    #[test]
    fn pasta_port_options() {
        let port = |ip, host, inner, proto| PublishedPort {
            host_ip: ip,
            host_port: NonZeroU16::new(host).unwrap(),
            port: NonZeroU16::new(inner).unwrap(),
            proto,
        };
        assert_eq!(pasta_ports(&[]), ["-t", "none", "-u", "none"]);
        assert_eq!(
            pasta_ports(&[
                port(None, 8080, 80, protocol::Proto::Tcp),
                port(
                    Some("127.0.0.1".parse().unwrap()),
                    8443,
                    443,
                    protocol::Proto::Tcp
                ),
            ]),
            ["-t", "8080:80", "-t", "127.0.0.1/8443:443", "-u", "none"]
        );
    }
}
