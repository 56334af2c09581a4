//! The kernel bridge backend of `--network bridge`, run by a privileged
//! executor in its own network namespace: a Linux bridge (made once, kept),
//! outbound NAT in nucleus-named chains, and per sandbox an address leased
//! from the subnet and a veth pair whose inner end is the sandbox's `eth0`.
//! Everything per sandbox is undone when it ends; leases of sandboxes
//! that died with their executor are taken over by the next one.
//!
//! The work is done by iproute2, iptables and nsenter, each a short-lived
//! child of the (single-threaded) executor.

use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use protocol::Bridge;

use crate::error::Error;
use crate::live_start_time;
use crate::sys;

/// One lease file per address in use, named by the address.
const LEASES: &str = "/run/nucleus/leases";
/// The nat chain nucleus owns; POSTROUTING jumps to it.
pub const NAT_CHAIN: &str = "NUCLEUS-POSTROUTING";

/// A sandbox's place on the bridge, released by `detach`.
#[derive(Debug)]
pub struct Attached {
    veth: String,
    lease: PathBuf,
}

fn failed(step: String, detail: impl Into<String>) -> Error {
    Error::Setup {
        step,
        source: io::Error::other(detail.into()),
    }
}

/// Where the tools are looked up: a fixed list, never the environment's
/// PATH (a privileged executor must not run what a caller's PATH names;
/// the helper has no environment at all).
const TOOL_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// One of the network tools, with a clean environment.
pub fn tool(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env_clear().env("PATH", TOOL_PATH);
    c
}

/// nsenter's `--net=` argument for the namespace behind `netns`, through
/// an inheritable copy of it (the first element; keep it until the
/// commands ran). /proc/PID/ns of a sandbox running as another user is
/// closed to an executor without CAP_SYS_PTRACE; the descriptor is not.
pub fn nsenter_arg(netns: BorrowedFd<'_>) -> Result<(OwnedFd, String), Error> {
    let copy = sys::dup_inheritable(netns)
        .map_err(|e| failed("passing the network namespace on".into(), e.to_string()))?;
    let arg = format!("--net=/proc/self/fd/{}", copy.as_raw_fd());
    Ok((copy, arg))
}

/// Runs a command; its stderr becomes the error.
fn run(program: &str, args: &[&str]) -> Result<String, Error> {
    let step = || format!("{program} {}", args.join(" "));
    let out = tool(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            failed(
                step(),
                format!("{e} (--network bridge needs iproute2, iptables and util-linux)"),
            )
        })?;
    if !out.status.success() {
        return Err(failed(
            step(),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Attaches process `pid`'s network namespace (the sandbox's, already
/// holding a loopback) to the bridge.
pub fn attach(bridge: &Bridge, pid: libc::pid_t, netns: BorrowedFd<'_>) -> Result<Attached, Error> {
    ensure_bridge(bridge)?;
    ensure_nat(bridge)?;
    let (address, lease) = lease(bridge, pid)?;
    let veth = format!("nv{pid}");
    let attached = Attached { veth, lease };
    match connect(bridge, pid, netns, address, &attached.veth) {
        Ok(()) => Ok(attached),
        Err(e) => {
            attached.detach();
            Err(e)
        }
    }
}

impl Attached {
    /// Removes the host end of the veth (if the namespace's end did not
    /// take it along already) and the lease; what failed, as text.
    pub fn detach(self) -> Vec<String> {
        let mut failures = Vec::new();
        let exists = tool("ip")
            .args(["link", "show", "dev", &self.veth])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if exists {
            if let Err(e) = run("ip", &["link", "del", "dev", &self.veth]) {
                failures.push(e.to_string());
            }
        }
        if let Err(e) = fs::remove_file(&self.lease) {
            if e.kind() != io::ErrorKind::NotFound {
                failures.push(format!("{}: {e}", self.lease.display()));
            }
        }
        failures
    }
}

fn gateway(bridge: &Bridge) -> Result<Ipv4Addr, Error> {
    bridge
        .subnet
        .host(1)
        .ok_or_else(|| failed("--subnet".into(), "has no host address"))
}

/// The bridge with the subnet's first address, up: made if missing; an
/// existing interface of that name must be a bridge with that address.
fn ensure_bridge(bridge: &Bridge) -> Result<(), Error> {
    let name = bridge.name.as_str();
    let gw = format!("{}/{}", gateway(bridge)?, bridge.subnet.prefix());
    let exists = || run("ip", &["-d", "-o", "link", "show", "dev", name]);
    let details = match exists() {
        Ok(details) => details,
        Err(_) => {
            // Another sandbox may make it at the same moment: then use theirs.
            if run("ip", &["link", "add", name, "type", "bridge"]).is_ok() {
                run("ip", &["addr", "add", &gw, "dev", name])?;
            }
            exists()?
        }
    };
    if !details.contains(" bridge ") {
        return Err(failed(
            format!("--bridge {name}"),
            "an interface of that name exists and is not a bridge; choose another --bridge",
        ));
    }
    let addresses = run("ip", &["-o", "-4", "addr", "show", "dev", name])?;
    if !addresses.contains(&format!(" {gw} ")) {
        return Err(failed(
            format!("--bridge {name}"),
            format!("the bridge exists without the address {gw}; it belongs to something else, or use its --subnet"),
        ));
    }
    run("ip", &["link", "set", "dev", name, "up"]).map(drop)
}

/// Forwarding on, and MASQUERADE for the subnet's traffic leaving by any
/// other interface, in the nat chain nucleus owns (added once).
fn ensure_nat(bridge: &Bridge) -> Result<(), Error> {
    fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| failed("enabling IPv4 forwarding".into(), e.to_string()))?;
    let subnet = bridge.subnet.to_string();
    let name = bridge.name.as_str();
    let ipt = |args: &[&str]| run("iptables", &[&["-w", "-t", "nat"], args].concat());
    if ipt(&["-L", NAT_CHAIN, "-n"]).is_err() {
        // Made by a concurrent start in between is fine too.
        let _ = ipt(&["-N", NAT_CHAIN]);
    }
    let jump = ["POSTROUTING", "-j", NAT_CHAIN];
    if ipt(&[&["-C"], &jump[..]].concat()).is_err() {
        ipt(&[&["-A"], &jump[..]].concat())?;
    }
    let rule = [
        NAT_CHAIN,
        "-s",
        &subnet,
        "!",
        "-o",
        name,
        "-j",
        "MASQUERADE",
    ];
    if ipt(&[&["-C"], &rule[..]].concat()).is_err() {
        ipt(&[&["-A"], &rule[..]].concat())?;
    }
    Ok(())
}

/// The first free address after the gateway, held by a file that names
/// its holder (pid and start time). A lease whose holder is gone is stale
/// and taken over: that is the clean-up after a crash.
fn lease(bridge: &Bridge, pid: libc::pid_t) -> Result<(Ipv4Addr, PathBuf), Error> {
    let dir = PathBuf::from(LEASES).join(bridge.name.as_str());
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| failed(format!("creating {}", dir.display()), e.to_string()))?;
    let holder = format!("{pid} {}\n", live_start_time(pid).unwrap_or_default());
    for n in 2..=bridge.subnet.hosts() {
        let Some(address) = bridge.subnet.host(n) else {
            break;
        };
        let path = dir.join(address.to_string());
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)
            {
                Ok(mut file) => {
                    file.write_all(holder.as_bytes()).map_err(|e| {
                        failed(format!("writing {}", path.display()), e.to_string())
                    })?;
                    return Ok((address, path));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if holder_alive(&path) {
                        break;
                    }
                    let _ = fs::remove_file(&path);
                }
                Err(e) => return Err(failed(format!("leasing {address}"), e.to_string())),
            }
        }
    }
    Err(failed(
        format!("--subnet {}", bridge.subnet),
        "every address is leased; use a larger --subnet",
    ))
}

fn holder_alive(lease: &std::path::Path) -> bool {
    let Ok(text) = fs::read_to_string(lease) else {
        // Being written right now by its holder.
        return true;
    };
    let mut fields = text.split_whitespace();
    match (fields.next().and_then(|p| p.parse().ok()), fields.next()) {
        (Some(pid), Some(start)) => live_start_time(pid).is_some_and(|t| t.to_string() == start),
        _ => false,
    }
}

/// The veth pair: the host end on the bridge, the other end moved into
/// the sandbox's namespace as `eth0` with the leased address and a
/// default route through the bridge.
fn connect(
    bridge: &Bridge,
    pid: libc::pid_t,
    netns: BorrowedFd<'_>,
    address: Ipv4Addr,
    veth: &str,
) -> Result<(), Error> {
    let pid_s = pid.to_string();
    run(
        "ip",
        &[
            "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", &pid_s,
        ],
    )?;
    run(
        "ip",
        &[
            "link",
            "set",
            "dev",
            veth,
            "master",
            bridge.name.as_str(),
            "up",
        ],
    )?;
    let (_inherited, netns) = nsenter_arg(netns)?;
    let inside = |args: &[&str]| run("nsenter", &[&[netns.as_str(), "--", "ip"], args].concat());
    let cidr = format!("{address}/{}", bridge.subnet.prefix());
    inside(&["addr", "add", &cidr, "dev", "eth0"])?;
    inside(&["link", "set", "dev", "eth0", "up"])?;
    inside(&[
        "route",
        "add",
        "default",
        "via",
        &gateway(bridge)?.to_string(),
    ])?;
    Ok(())
}
