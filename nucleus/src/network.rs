//! `--network` and its companions → the plan's [`NetworkMode`], and `--dns`
//! as the root's /etc/resolv.conf. Everything is checked for form here;
//! whether a bridge or a host port is free is checked where it is made.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU16;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use protocol::{
    Arg, Bridge, BridgeName, Cidr, Domain, EgressPolicy, EgressReport, Ipv4Subnet, KernelBridge,
    Mount, NatBackend, NetworkMode, Proto, PublishedPort, ServiceMode, MAX_EGRESS_DOMAINS,
    MAX_EGRESS_NETS, MAX_EGRESS_PORTS, MAX_PUBLISHED, MAX_RESOLVERS,
};

use crate::cli::{Nat, Network, RunSpec};
use crate::client;
use crate::compile::{self, Caller};

/// Where the userspace NAT tools are looked for: the executor runs them
/// from this fixed list too, never from the caller's PATH.
const TOOL_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The network mode, and `--dns` as the root's /etc/resolv.conf (in place
/// of the host's copy).
pub fn compile(spec: &RunSpec, caller: Caller, mounts: &mut Vec<Mount>) -> Result<NetworkMode> {
    if spec.network != Network::Bridge {
        let misplaced = [
            ("--bridge", spec.bridge.is_some()),
            ("--subnet", spec.subnet.is_some()),
            ("--nat-backend", spec.nat.is_some()),
            ("-p", !spec.publish.is_empty()),
            ("--egress-report", spec.egress_report.is_some()),
            ("--egress-allow and --egress-*-port", egress_asked(spec)),
        ];
        if let Some((flag, _)) = misplaced.iter().find(|(_, given)| *given) {
            bail!("{flag}: needs --network bridge (with none nothing leaves; with host the host's own rules apply)");
        }
    }
    let mode = match spec.network {
        Network::None => NetworkMode::None,
        Network::Bridge => NetworkMode::Bridge(Bridge {
            backend: backend(spec, caller)?,
            egress: egress(spec)?,
            publish: publish(&spec.publish)?,
        }),
        Network::Host if spec.allow_host_network => NetworkMode::Host,
        Network::Host => bail!(
            "--network host shares the host's network namespace with the sandbox; add --allow-host-network to confirm"
        ),
    };
    resolv_conf(spec, mounts)?;
    Ok(mode)
}

fn egress_asked(spec: &RunSpec) -> bool {
    !spec.egress_allow.is_empty()
        || !spec.egress_tcp_ports.is_empty()
        || !spec.egress_udp_ports.is_empty()
}

/// `--nat-backend`: `auto` is the kernel bridge when nucleus may make one
/// (root, or through the helper) and a userspace NAT otherwise.
fn backend(spec: &RunSpec, caller: Caller) -> Result<NatBackend> {
    let privileged = caller.uid == 0 || caller.via_helper;
    // Checked for form first, whichever backend is picked.
    let kernel = kernel_bridge(spec)?;
    let userspace_only = |what: &str| -> Result<()> {
        if spec.bridge.is_some() || spec.subnet.is_some() {
            bail!("--bridge and --subnet are for the kernel backend; {what} makes its own network");
        }
        Ok(())
    };
    match spec.nat.unwrap_or(Nat::Auto) {
        Nat::Kernel if !privileged => bail!(
            "--nat-backend kernel: a Linux bridge needs root, or the nucleus helper ({}{}); --nat-backend userspace needs neither",
            client::SOCKET,
            if spec.rootless { "; --rootless keeps the sandbox in-process" } else { " is missing" }
        ),
        Nat::Kernel => Ok(NatBackend::Kernel(kernel)),
        Nat::Auto if privileged => Ok(NatBackend::Kernel(kernel)),
        Nat::Auto | Nat::Userspace => {
            userspace_only("userspace NAT")?;
            if found("pasta") {
                Ok(NatBackend::Pasta)
            } else if found("slirp4netns") {
                Ok(NatBackend::Slirp4netns)
            } else {
                bail!("--network bridge without root or the helper needs pasta (package passt) or slirp4netns; neither is installed in {}", TOOL_DIRS.join(":"))
            }
        }
        Nat::Pasta => {
            userspace_only("pasta")?;
            require_tool("pasta", "passt")?;
            Ok(NatBackend::Pasta)
        }
        Nat::Slirp4netns => {
            userspace_only("slirp4netns")?;
            require_tool("slirp4netns", "slirp4netns")?;
            Ok(NatBackend::Slirp4netns)
        }
    }
}

fn found(tool: &str) -> bool {
    TOOL_DIRS.iter().any(|d| Path::new(d).join(tool).is_file())
}

fn require_tool(tool: &str, package: &str) -> Result<()> {
    if found(tool) {
        Ok(())
    } else {
        bail!("--nat-backend {tool}: {tool} is not installed (package {package})")
    }
}

/// `--bridge` and `--subnet`, checked for form (whether the bridge is
/// ours is checked where it is made).
fn kernel_bridge(spec: &RunSpec) -> Result<KernelBridge> {
    let name = spec.bridge.as_deref().unwrap_or(KernelBridge::DEFAULT_NAME);
    let name =
        BridgeName::try_from(name.to_owned()).map_err(|e| anyhow!("--bridge {name}: {e}"))?;
    let (net, prefix) = KernelBridge::DEFAULT_SUBNET;
    let default_subnet = format!("{net}/{prefix}");
    let text = spec.subnet.as_deref().unwrap_or(&default_subnet);
    let bad = |why: String| anyhow!("--subnet {text}: {why}");
    let (addr, prefix) = text
        .split_once('/')
        .ok_or_else(|| bad("expected an IPv4 network in CIDR form, like 10.88.0.0/16".into()))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| bad(format!("{addr} is not an IPv4 address")))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| bad(format!("/{prefix} is not a prefix length")))?;
    let subnet = Ipv4Subnet::try_from((addr, prefix)).map_err(|e| bad(e.to_string()))?;
    Ok(KernelBridge { name, subnet })
}

/// `-p [HOST_IP:]HOST_PORT:PORT[/tcp|/udp]`, as podman and docker spell it.
fn publish(specs: &[String]) -> Result<Vec<PublishedPort>> {
    if specs.len() > MAX_PUBLISHED {
        bail!(
            "-p: at most {MAX_PUBLISHED} published ports; {} given",
            specs.len()
        );
    }
    let ports: Vec<PublishedPort> = specs
        .iter()
        .map(|v| published(v).map_err(|why| anyhow!("-p {v}: {why}")))
        .collect::<Result<_>>()?;
    for (i, p) in ports.iter().enumerate() {
        if ports[..i]
            .iter()
            .any(|q| q.host_port == p.host_port && q.proto == p.proto)
        {
            bail!(
                "-p {p}: host port {}/{} is published twice",
                p.host_port,
                p.proto.as_str()
            );
        }
    }
    Ok(ports)
}

fn published(v: &str) -> std::result::Result<PublishedPort, String> {
    let (rest, proto) = match v.rsplit_once('/') {
        Some((rest, "tcp")) => (rest, Proto::Tcp),
        Some((rest, "udp")) => (rest, Proto::Udp),
        Some((_, other)) => return Err(format!("unknown protocol {other:?}; use tcp or udp")),
        None => (v, Proto::Tcp),
    };
    let form = "expected [HOST_IP:]HOST_PORT:PORT[/tcp|/udp], like 8080:80 or 127.0.0.1:8080:80";
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, host_port, port) = match parts[..] {
        [host_port, port] => (None, host_port, port),
        [ip, host_port, port] => {
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| format!("{ip} is not an IPv4 address; {form}"))?;
            (Some(ip), host_port, port)
        }
        _ => return Err(form.to_owned()),
    };
    let number = |p: &str| {
        p.parse::<NonZeroU16>()
            .map_err(|_| format!("{p} is not a port number from 1 to 65535; {form}"))
    };
    Ok(PublishedPort {
        host_ip,
        host_port: number(host_port)?,
        port: number(port)?,
        proto,
    })
}

/// `--egress-*`: a policy once any is given. Denied destinations are
/// reported to the violations file (`--egress-report`, `--violations`),
/// or else on stderr in agent mode.
fn egress(spec: &RunSpec) -> Result<Option<EgressPolicy>> {
    if !egress_asked(spec) {
        if spec.egress_report.is_some() {
            bail!("--egress-report: reports what --egress-allow denies; give a policy (--egress-allow, --egress-*-port)");
        }
        return Ok(None);
    }
    let mut allow = Vec::new();
    let mut domains = Vec::new();
    for v in &spec.egress_allow {
        match cidr(v) {
            Ok(net) => allow.push(net),
            Err(why) if v.bytes().any(|b| b.is_ascii_alphabetic()) && !v.contains(':') => {
                let domain = Domain::try_from(v.clone()).map_err(|e| {
                    anyhow!("--egress-allow {v}: neither a network ({why}) nor {e}")
                })?;
                if spec.dns.is_empty() {
                    bail!("--egress-allow {v}: a domain needs --dns, the resolver both nucleus and the sandbox ask");
                }
                domains.push(domain);
            }
            Err(why) => bail!("--egress-allow {v}: {why}"),
        }
    }
    let ports = |flag: &str, list: &[String]| {
        list.iter()
            .map(|v| {
                v.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| anyhow!("{flag} {v}: expected a port number from 1 to 65535"))
            })
            .collect::<Result<Vec<u16>>>()
    };
    let report = if spec.egress_report.is_some() || spec.violations.is_some() {
        EgressReport::File
    } else if spec.mode == ServiceMode::Agent {
        EgressReport::Stderr
    } else {
        EgressReport::Off
    };
    let policy = EgressPolicy {
        allow,
        domains,
        tcp_ports: ports("--egress-tcp-port", &spec.egress_tcp_ports)?,
        udp_ports: ports("--egress-udp-port", &spec.egress_udp_ports)?,
        dns: spec.dns.clone(),
        report,
    };
    for (what, count, max) in [
        (
            "--egress-allow networks",
            policy.allow.len(),
            MAX_EGRESS_NETS,
        ),
        (
            "--egress-allow domains",
            policy.domains.len(),
            MAX_EGRESS_DOMAINS,
        ),
        (
            "--egress-tcp-port",
            policy.tcp_ports.len(),
            MAX_EGRESS_PORTS,
        ),
        (
            "--egress-udp-port",
            policy.udp_ports.len(),
            MAX_EGRESS_PORTS,
        ),
    ] {
        if count > max {
            bail!("{what}: at most {max} given; {count} were");
        }
    }
    Ok(Some(policy))
}

/// `10.0.0.0/8`, `2001:db8::/32`, or one address (a /32 or /128).
fn cidr(v: &str) -> std::result::Result<Cidr, String> {
    let (addr, prefix) = match v.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (v, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| {
        "expected an IPv4 or IPv6 network like 192.0.2.0/24, or a domain name".to_owned()
    })?;
    let prefix = match prefix {
        Some(p) => p
            .parse::<u8>()
            .map_err(|_| format!("/{p} is not a prefix length"))?,
        None if addr.is_ipv4() => 32,
        None => 128,
    };
    Cidr::try_from((addr, prefix)).map_err(|e| e.to_string())
}

/// `--dns` as the root's /etc/resolv.conf, replacing the host's copy.
fn resolv_conf(spec: &RunSpec, mounts: &mut Vec<Mount>) -> Result<()> {
    if spec.dns.is_empty() {
        return Ok(());
    }
    if spec.dns.len() > MAX_RESOLVERS {
        bail!(
            "--dns: at most {MAX_RESOLVERS} resolvers (glibc reads no more); {} given",
            spec.dns.len()
        );
    }
    if spec.rootfs.is_some() {
        bail!("--dns writes /etc/resolv.conf into the default root; with --rootfs, put it in your root instead");
    }
    let target = compile::abs("/etc/resolv.conf")?;
    mounts.retain(|m| *m.target() != target);
    let text: String = spec
        .dns
        .iter()
        .map(|ip| format!("nameserver {ip}\n"))
        .collect();
    mounts.push(Mount::File {
        target,
        text: Arg::try_from(text).map_err(|e| anyhow!("--dns: {e}"))?,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_forms() {
        let p = published("8080:80").unwrap();
        assert_eq!(
            (p.host_ip, p.host_port.get(), p.port.get(), p.proto),
            (None, 8080, 80, Proto::Tcp)
        );
        let p = published("127.0.0.1:5353:53/udp").unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(p.proto, Proto::Udp);
        assert_eq!(p.to_string(), "127.0.0.1:5353:53/udp");
        for bad in [
            "80",
            "0:80",
            "8080:70000",
            "x:80",
            "1.2.3:80:80",
            "80:80/sctp",
            "a:b:c:d",
        ] {
            assert!(published(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn published_twice() {
        let twice = publish(&["8080:80".into(), "8080:81".into()]).unwrap_err();
        assert!(twice.to_string().contains("published twice"), "{twice}");
        assert!(publish(&["8080:80".into(), "8080:80/udp".into()]).is_ok());
    }
}
