//! A sandbox's network: none, the host's, or its own namespace bridged
//! out through a kernel bridge or a userspace NAT, with published ports
//! and a deny-by-default egress policy.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU16;

use serde::{Deserialize, Serialize};

use crate::plan::PlanError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// A new network namespace with only the loopback interface, up.
    None,
    /// The host's network namespace, shared (`--allow-host-network` only;
    /// refused in strict-agent mode).
    Host,
    /// A new network namespace with loopback and `eth0`, whose traffic
    /// leaves through `backend`'s NAT.
    Bridge(Bridge),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bridge {
    pub backend: NatBackend,
    /// Deny-by-default outbound rules in the sandbox's namespace; None
    /// lets everything out.
    pub egress: Option<EgressPolicy>,
    /// Host ports forwarded to the sandbox (`-p`).
    pub publish: Vec<PublishedPort>,
}

/// Who carries a bridged sandbox's traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NatBackend {
    /// A Linux bridge in the executor's namespace and a veth per sandbox;
    /// the kernel NATs (root, or the helper).
    Kernel(KernelBridge),
    /// pasta, running as the caller: a tap in the sandbox, sockets on the
    /// host (rootless). The host's loopback is the gateway's address.
    Pasta,
    /// slirp4netns, as the caller (rootless; no published ports).
    Slirp4netns,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelBridge {
    pub name: BridgeName,
    pub subnet: Ipv4Subnet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// `-p [HOST_IP:]HOST_PORT:PORT[/PROTO]`: connections to the host's
/// `host_port` (on `host_ip`, or every address) reach the sandbox's `port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedPort {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: NonZeroU16,
    pub port: NonZeroU16,
    pub proto: Proto,
}

impl PublishedPort {
    /// Ports below this need privilege on the host.
    pub const FIRST_UNPRIVILEGED: u16 = 1024;

    pub fn privileged(&self) -> bool {
        self.host_port.get() < Self::FIRST_UNPRIVILEGED
    }
}

impl std::fmt::Display for PublishedPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port,
            self.port,
            self.proto.as_str()
        )
    }
}

/// Most published ports per sandbox.
pub const MAX_PUBLISHED: usize = 64;

impl Bridge {
    /// Limits and combinations no single field can express.
    pub(crate) fn validate(&self) -> Result<(), PlanError> {
        let too_many =
            |what, count, max| (count > max).then_some(PlanError::TooMany { what, count, max });
        if let Some(e) = &self.egress {
            if let Some(err) = too_many("egress networks", e.allow.len(), MAX_EGRESS_NETS)
                .or(too_many(
                    "egress domains",
                    e.domains.len(),
                    MAX_EGRESS_DOMAINS,
                ))
                .or(too_many("egress resolvers", e.dns.len(), MAX_RESOLVERS))
                .or(too_many(
                    "egress TCP ports",
                    e.tcp_ports.len(),
                    MAX_EGRESS_PORTS,
                ))
                .or(too_many(
                    "egress UDP ports",
                    e.udp_ports.len(),
                    MAX_EGRESS_PORTS,
                ))
            {
                return Err(err);
            }
        }
        if let Some(err) = too_many("published ports", self.publish.len(), MAX_PUBLISHED) {
            return Err(err);
        }
        if self.backend == NatBackend::Slirp4netns && !self.publish.is_empty() {
            return Err(PlanError::PublishUnsupported);
        }
        for (i, p) in self.publish.iter().enumerate() {
            let clash = self.publish[..i].iter().any(|q| {
                q.host_port == p.host_port
                    && q.proto == p.proto
                    && (q.host_ip.is_none() || p.host_ip.is_none() || q.host_ip == p.host_ip)
            });
            if clash {
                return Err(PlanError::PublishTwice(p.to_string()));
            }
        }
        Ok(())
    }
}

/// What may leave the sandbox: loopback, replies, DNS to `dns`, and the
/// `allow` networks (on `tcp_ports`/`udp_ports` only, when any are given).
/// Everything else is logged (rate-limited) and dropped; link-local
/// metadata addresses are dropped unless an `allow` entry lies inside them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressPolicy {
    pub allow: Vec<Cidr>,
    /// Resolved at start by the executor (through `dns`), and again
    /// within their records' TTL: their addresses are allowed like `allow`.
    pub domains: Vec<Domain>,
    pub tcp_ports: Vec<u16>,
    pub udp_ports: Vec<u16>,
    pub dns: Vec<IpAddr>,
    /// Where denied destinations are reported.
    pub report: EgressReport,
}

/// Where a sandbox's denied destinations go, each once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EgressReport {
    Off,
    /// A line each on the caller's stderr.
    Stderr,
    /// NDJSON to the violations file the caller opened: its descriptor
    /// travels with the plan (after stdio, through the helper).
    File,
}

/// A domain name as given on the command line: ASCII labels of letters,
/// digits and '-', at least two of them, stored lowercase without the
/// trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Domain(String);

impl Domain {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Domain {
    type Error = PlanError;

    fn try_from(input: String) -> Result<Self, PlanError> {
        let bad = |why| PlanError::Domain {
            input: input.clone(),
            why,
        };
        let name = input.strip_suffix('.').unwrap_or(&input);
        if name.len() > 253 {
            return Err(bad("longer than 253 characters"));
        }
        let labels: Vec<&str> = name.split('.').collect();
        if labels.len() < 2 {
            return Err(bad("it needs at least two labels, as in example.com"));
        }
        for label in &labels {
            if label.is_empty() {
                return Err(bad("it has an empty label"));
            }
            if label.len() > 63 {
                return Err(bad("a label is longer than 63 characters"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(bad(
                    "only ASCII letters, digits, '-' and '.' are allowed (give international names in their xn-- form)",
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(bad("a label starts or ends with '-'"));
            }
        }
        // No top-level domain is numeric, and 192.0.2.1 must not be looked up
        // as a name when an address was meant.
        if labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad(
                "the last label is all digits (give an address as an address)",
            ));
        }
        Ok(Domain(name.to_ascii_lowercase()))
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Domain> for String {
    fn from(d: Domain) -> String {
        d.0
    }
}

/// Most allowed networks, and most ports per protocol (iptables'
/// multiport match takes 15).
pub const MAX_EGRESS_NETS: usize = 256;
pub const MAX_EGRESS_PORTS: usize = 15;
/// Most resolvers: glibc reads no more `nameserver` lines (MAXNS), and the
/// executor asks each, for each domain, on every refresh.
pub const MAX_RESOLVERS: usize = 3;
/// Most allowed domains (each is looked up on every refresh).
pub const MAX_EGRESS_DOMAINS: usize = 32;

/// An IPv4 or IPv6 network: the address has no bits set past the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "(IpAddr, u8)", into = "(IpAddr, u8)")]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl TryFrom<(IpAddr, u8)> for Cidr {
    type Error = PlanError;

    fn try_from((addr, prefix): (IpAddr, u8)) -> Result<Self, Self::Error> {
        let (bits, width) = match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32u8),
            IpAddr::V6(a) => (u128::from(a), 128u8),
        };
        let host_bits = u32::from(width - prefix.min(width));
        let host_mask = if host_bits == 0 {
            0
        } else {
            u128::MAX >> (128 - host_bits)
        };
        if prefix > width || bits & host_mask != 0 {
            return Err(PlanError::Cidr(format!("{addr}/{prefix}")));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl From<Cidr> for (IpAddr, u8) {
    fn from(c: Cidr) -> Self {
        (c.addr, c.prefix)
    }
}

impl Cidr {
    pub fn is_ipv6(self) -> bool {
        self.addr.is_ipv6()
    }

    /// Whether `self` lies inside `outer`.
    pub fn within(self, outer: Cidr) -> bool {
        let bits = |c: Cidr| match c.addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, c.prefix),
            IpAddr::V6(a) => (u128::from(a), c.prefix),
        };
        let ((inner, inner_len), (outer_bits, outer_len)) = (bits(self), bits(outer));
        self.is_ipv6() == outer.is_ipv6()
            && inner_len >= outer_len
            && (outer_len == 0 || (inner ^ outer_bits) >> (128 - u32::from(outer_len)) == 0)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl KernelBridge {
    /// The bridge `--network bridge` uses unless told otherwise, and the
    /// only one the helper makes for an unprivileged caller.
    pub const DEFAULT_NAME: &'static str = "nucleus0";
    pub const DEFAULT_SUBNET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 88, 0, 0), 16);

    /// Whether this is the default bridge on its default subnet.
    pub fn is_default(&self) -> bool {
        self.name.as_str() == Self::DEFAULT_NAME
            && (self.subnet.network, self.subnet.prefix) == Self::DEFAULT_SUBNET
    }
}

/// A bridge interface's name: what `ip link` shows, at most 15 bytes
/// (IFNAMSIZ - 1) of [a-z0-9_-], starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BridgeName(String);

impl TryFrom<String> for BridgeName {
    type Error = PlanError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let ok = (1..=15).contains(&s.len())
            && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(BridgeName(s))
        } else {
            Err(PlanError::BridgeName(s))
        }
    }
}

impl From<BridgeName> for String {
    fn from(n: BridgeName) -> String {
        n.0
    }
}

impl BridgeName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IPv4 subnet for a bridge: /8 to /30, the address its network
/// address. The bridge takes the first host address; sandboxes the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "(Ipv4Addr, u8)", into = "(Ipv4Addr, u8)")]
pub struct Ipv4Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl TryFrom<(Ipv4Addr, u8)> for Ipv4Subnet {
    type Error = PlanError;

    fn try_from((network, prefix): (Ipv4Addr, u8)) -> Result<Self, Self::Error> {
        let bad = || PlanError::Subnet(format!("{network}/{prefix}"));
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - prefix);
        if u32::from(network) & !mask != 0 {
            return Err(bad());
        }
        Ok(Ipv4Subnet { network, prefix })
    }
}

impl From<Ipv4Subnet> for (Ipv4Addr, u8) {
    fn from(s: Ipv4Subnet) -> Self {
        (s.network, s.prefix)
    }
}

impl Ipv4Subnet {
    pub fn prefix(self) -> u8 {
        self.prefix
    }

    /// The `n`th address of the subnet (1: the gateway), if it is a host
    /// address (neither the network nor the broadcast address).
    pub fn host(self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u32 << (32 - self.prefix);
        (n >= 1 && n < size - 1).then(|| Ipv4Addr::from(u32::from(self.network) + n))
    }

    /// How many host addresses the subnet has.
    pub fn hosts(self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }
}

impl std::fmt::Display for Ipv4Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}
