//! The kernel bridge backend of `--network bridge`, run by a privileged
//! executor in its own network namespace: a Linux bridge (made once, kept),
//! outbound NAT in nucleus-named chains, and per sandbox an address leased
//! from the subnet and a veth pair whose inner end is the sandbox's `eth0`.
//! Everything per sandbox is undone when it ends; leases of sandboxes
//! that died with their executor are taken over by the next one.
//!
//! Published ports are held by a bound socket in the executor for the
//! sandbox's lifetime (so a port in use is an error before anything is
//! made, and no one else takes it meanwhile) and forwarded by DNAT rules
//! (see `firewall`); rules towards a stale lease are swept at each start.
//!
//! The work is done by iproute2, iptables and nsenter, each a short-lived
//! child of the (single-threaded) executor.

use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use protocol::{KernelBridge, PublishedPort};

use crate::error::Error;
use crate::firewall::Firewall;
use crate::live_start_time;
use crate::sys;
use crate::tools::{failed, run, Inside};

/// One lease file per address in use, named by the address.
const LEASES: &str = "/run/nucleus/leases";

/// A sandbox's place on the bridge, released by `detach`.
pub struct Attached {
    veth: String,
    lease: PathBuf,
    address: Ipv4Addr,
    published: Vec<PublishedPort>,
    /// The bound sockets holding the published host ports.
    _reserved: Vec<OwnedFd>,
    firewall: &'static dyn Firewall,
}

/// Attaches process `pid`'s network namespace (the sandbox's, already
/// holding a loopback) to the bridge, with `ports` forwarded to it.
pub fn attach(
    bridge: &KernelBridge,
    ports: &[PublishedPort],
    firewall: &'static dyn Firewall,
    inside: &Inside<BorrowedFd<'_>>,
) -> Result<Attached, Error> {
    let pid = inside.pid;
    let reserved = reserve(ports)?;
    ensure_bridge(bridge)?;
    fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| failed("enabling IPv4 forwarding".into(), e.to_string()))?;
    if !ports.is_empty() {
        // A published port's DNAT from 127.0.0.1 must be routed out; the
        // guard first, so no packet for the host's loopback is ever let in
        // from the bridge (route_localnet also accepts those).
        firewall.guard_loopback(bridge)?;
        let localnet = format!(
            "/proc/sys/net/ipv4/conf/{}/route_localnet",
            bridge.name.as_str()
        );
        fs::write(&localnet, "1")
            .map_err(|e| failed(format!("writing {localnet}"), e.to_string()))?;
    }
    let dir = lease_dir(bridge)?;
    for failure in firewall.prepare(bridge, &|address| {
        holder_alive(&dir.join(address.to_string()))
    })? {
        eprintln!("nucleus: warning: removing a dead sandbox's port forwarding: {failure}");
    }
    remove_stale_leases(&dir);
    let (address, lease) = lease(bridge, &dir, pid)?;
    let attached = Attached {
        veth: format!("nv{pid}"),
        lease,
        address,
        published: ports.to_vec(),
        _reserved: reserved,
        firewall,
    };
    let connected = connect(bridge, inside, address, &attached.veth)
        .and_then(|()| firewall.publish(ports, address));
    match connected {
        Ok(()) => Ok(attached),
        Err(e) => {
            attached.detach();
            Err(e)
        }
    }
}

/// Binds every published host port, or says which one is taken.
pub fn reserve(ports: &[PublishedPort]) -> Result<Vec<OwnedFd>, Error> {
    ports
        .iter()
        .map(|p| {
            let ip = p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
            sys::reserve_port(p.proto == protocol::Proto::Tcp, ip, p.host_port.get()).map_err(|e| {
                let why = match e.raw_os_error() {
                    Some(libc::EADDRINUSE) => "the host port is already in use".to_owned(),
                    Some(libc::EADDRNOTAVAIL) => "the host has no such address".to_owned(),
                    _ => e.to_string(),
                };
                failed(format!("-p {p}"), why)
            })
        })
        .collect()
}

impl Attached {
    /// Withdraws the forwarded ports, removes the host end of the veth (if
    /// the namespace's end did not take it along already) and the lease;
    /// what failed, as text.
    pub fn detach(self) -> Vec<String> {
        let mut failures = self.firewall.withdraw(&self.published, self.address);
        // Usually gone already, with the sandbox's namespace.
        if let Err(e) = run("ip", &["link", "del", "dev", &self.veth]) {
            if !e.to_string().contains("Cannot find device") {
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

fn gateway(bridge: &KernelBridge) -> Result<Ipv4Addr, Error> {
    bridge
        .subnet
        .host(1)
        .ok_or_else(|| failed("--subnet".into(), "has no host address"))
}

/// The bridge with the subnet's first address, up: made if missing; an
/// existing interface of that name must be a bridge with that address.
fn ensure_bridge(bridge: &KernelBridge) -> Result<(), Error> {
    let name = bridge.name.as_str();
    let gw = format!("{}/{}", gateway(bridge)?, bridge.subnet.prefix());
    // One listing says what it is, its addresses and whether it is up.
    let show = || run("ip", &["-d", "addr", "show", "dev", name]);
    let details = match show() {
        Ok(details) => details,
        Err(_) => {
            check_routes(bridge)?;
            // Another sandbox may make it at the same moment: then use theirs.
            if run("ip", &["link", "add", name, "type", "bridge"]).is_ok() {
                run("ip", &["addr", "add", &gw, "dev", name])?;
            }
            show()?
        }
    };
    match bridge_state(&details, &gw) {
        BridgeState::Up => Ok(()),
        BridgeState::Down => run("ip", &["link", "set", "dev", name, "up"]).map(drop),
        BridgeState::Unaddressed => {
            // Made by a start killed before it gave the bridge its address.
            run("ip", &["addr", "add", &gw, "dev", name])?;
            run("ip", &["link", "set", "dev", name, "up"]).map(drop)
        }
        BridgeState::NotABridge => Err(failed(
            format!("--bridge {name}"),
            "an interface of that name exists and is not a bridge; choose another --bridge",
        )),
        BridgeState::OtherAddress => Err(failed(
            format!("--bridge {name}"),
            format!("the bridge exists without the address {gw}; it belongs to something else, or use its --subnet"),
        )),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum BridgeState {
    Up,
    Down,
    /// A bridge with no IPv4 address at all: one nucleus began to make.
    Unaddressed,
    NotABridge,
    OtherAddress,
}

/// What `ip -d addr show dev NAME` says of an interface that should be
/// our bridge with the address `gw` (as `ADDR/PREFIX`).
fn bridge_state(details: &str, gw: &str) -> BridgeState {
    let mut lines = details.lines();
    let flags = lines
        .next()
        .and_then(|l| l.split_once('<'))
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or("", |(flags, _)| flags);
    let rest: Vec<&str> = lines.map(str::trim_start).collect();
    if !rest.iter().any(|l| l.starts_with("bridge ")) {
        BridgeState::NotABridge
    } else if !rest.iter().any(|l| l.starts_with("inet ")) {
        BridgeState::Unaddressed
    } else if !rest.iter().any(|l| l.starts_with(&format!("inet {gw} "))) {
        BridgeState::OtherAddress
    } else if flags.split(',').any(|f| f == "UP") {
        BridgeState::Up
    } else {
        BridgeState::Down
    }
}

/// A new bridge's subnet must not overlap a network the host already
/// routes: its route would shadow (or be shadowed by) that one.
fn check_routes(bridge: &KernelBridge) -> Result<(), Error> {
    let routes = run("ip", &["-o", "-4", "route", "show", "table", "all"])?;
    let subnet = bridge.subnet;
    let (ours, our_prefix) = <(Ipv4Addr, u8)>::from(subnet);
    for line in routes.lines() {
        let Some(dest) = line.split_whitespace().next() else {
            continue;
        };
        let (addr, prefix) = match dest.split_once('/') {
            Some((a, p)) => (a, p.parse::<u8>().ok()),
            None => (dest, Some(32)),
        };
        if line.contains(&format!(" dev {} ", bridge.name.as_str())) {
            continue;
        }
        // The default route and special routes (local, broadcast: their
        // first word is the type) overlap nothing.
        let (Ok(addr), Some(prefix)) = (addr.parse::<Ipv4Addr>(), prefix) else {
            continue;
        };
        if prefix == 0 {
            continue;
        }
        let shorter = prefix.min(our_prefix);
        let mask = u32::MAX.checked_shl(32 - u32::from(shorter)).unwrap_or(0);
        if u32::from(addr) & mask == u32::from(ours) & mask {
            return Err(failed(
                format!("--subnet {subnet}"),
                format!(
                    "overlaps the host's route {}; choose another --subnet",
                    line.trim()
                ),
            ));
        }
    }
    Ok(())
}

fn lease_dir(bridge: &KernelBridge) -> Result<PathBuf, Error> {
    let dir = PathBuf::from(LEASES).join(bridge.name.as_str());
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| failed(format!("creating {}", dir.display()), e.to_string()))?;
    Ok(dir)
}

/// The first free address after the gateway, held by a file that names
/// its holder (pid and start time). A lease whose holder is gone is stale
/// and taken over: that is the clean-up after a crash.
fn lease(
    bridge: &KernelBridge,
    dir: &std::path::Path,
    pid: libc::pid_t,
) -> Result<(Ipv4Addr, PathBuf), Error> {
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

/// Removes the leases of sandboxes that died with their executor (after
/// their forwarding rules: a rule is stale once its lease is).
fn remove_stale_leases(dir: &std::path::Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !holder_alive(&path) {
            let _ = fs::remove_file(&path);
        }
    }
}

/// Whether the lease at `lease` is held by a live process. A missing
/// lease is not; an empty one is being written by its holder, unless it
/// has been empty for a while (its holder died in between).
fn holder_alive(lease: &std::path::Path) -> bool {
    let text = match fs::read_to_string(lease) {
        Ok(text) => text,
        Err(e) => return e.kind() != io::ErrorKind::NotFound,
    };
    if text.is_empty() {
        let age = fs::metadata(lease)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        return age.is_none_or(|age| age < std::time::Duration::from_secs(10));
    }
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
    bridge: &KernelBridge,
    inside: &Inside<BorrowedFd<'_>>,
    address: Ipv4Addr,
    veth: &str,
) -> Result<(), Error> {
    let pid_s = inside.pid.to_string();
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
    // One ip in the namespace for all three steps.
    let batch = format!(
        "addr add {address}/{} dev eth0\nlink set dev eth0 up\nroute add default via {}\n",
        bridge.subnet.prefix(),
        gateway(bridge)?
    );
    inside
        .enter()?
        .run_with_input("ip", &["-batch", "-"], &batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRIDGE_UP: &str = "\
5: nucleus0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default qlen 1000
    link/ether 26:22:90:36:c0:28 brd ff:ff:ff:ff:ff:ff promiscuity 0  allmulti 0 minmtu 68 maxmtu 65535
    bridge forward_delay 1500 hello_time 200 max_age 2000 stp_state 0 priority 32768
    inet 10.88.0.1/16 scope global nucleus0
       valid_lft forever preferred_lft forever
";

    #[test]
    fn an_interface_is_our_bridge_only_with_our_address() {
        assert_eq!(bridge_state(BRIDGE_UP, "10.88.0.1/16"), BridgeState::Up);
        let down = BRIDGE_UP.replace("MULTICAST,UP,LOWER_UP", "MULTICAST");
        assert_eq!(bridge_state(&down, "10.88.0.1/16"), BridgeState::Down);
        assert_eq!(
            bridge_state(BRIDGE_UP, "10.88.0.1/24"),
            BridgeState::OtherAddress
        );
        let bare = BRIDGE_UP.replace("    inet 10.88.0.1/16 scope global nucleus0\n", "");
        assert_eq!(
            bridge_state(&bare, "10.88.0.1/16"),
            BridgeState::Unaddressed
        );
        let veth = BRIDGE_UP.replace("    bridge forward_delay", "    veth forward_delay");
        assert_eq!(bridge_state(&veth, "10.88.0.1/16"), BridgeState::NotABridge);
        assert_eq!(bridge_state("", "10.88.0.1/16"), BridgeState::NotABridge);
    }
}
