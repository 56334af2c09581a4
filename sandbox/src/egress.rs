//! Egress rules for a sandbox's own network namespace, built by pure
//! functions as `iptables-restore` input (tested as exact text) and loaded
//! by the executor into the namespace, IPv4 and IPv6 alike. Everything
//! lives in the `NUCLEUS-EGRESS` chain, which OUTPUT jumps to.

use std::collections::HashSet;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use protocol::{Cidr, EgressPolicy, EgressReport};

use crate::error::Error;
use crate::tools::Inside;
use crate::{dns, nflog};

pub const CHAIN: &str = "NUCLEUS-EGRESS";
pub const LOG_PREFIX: &str = "nucleus-egress-denied: ";

/// Cloud metadata and other link-local services: denied even when a wider
/// allowed network covers them, unless an allowed network lies inside.
fn metadata(ipv6: bool) -> Option<Cidr> {
    let (addr, prefix): (IpAddr, u8) = if ipv6 {
        (
            IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
            128,
        )
    } else {
        (IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 0, 0)), 16)
    };
    Cidr::try_from((addr, prefix)).ok()
}

/// The `iptables-restore` (or `ip6tables-restore`) input for `policy`,
/// its domains resolved to `resolved`. Only the policy's own networks
/// can open the metadata range: a domain resolving into it (DNS
/// rebinding) is still dropped there.
pub fn rules(policy: &EgressPolicy, resolved: &[IpAddr], ipv6: bool) -> String {
    let mut r = vec![
        "*filter".to_owned(),
        format!(":{CHAIN} - [0:0]"),
        format!("-A OUTPUT -j {CHAIN}"),
        format!("-A {CHAIN} -o lo -j RETURN"),
        format!("-A {CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"),
    ];
    if ipv6 {
        // Neighbour discovery, without which IPv6 does not work on a link:
        // router solicitation, neighbour solicitation and advertisement.
        for icmp_type in [133, 135, 136] {
            r.push(format!(
                "-A {CHAIN} -p ipv6-icmp -m icmp6 --icmpv6-type {icmp_type} -j RETURN"
            ));
        }
    }
    for dns in policy.dns.iter().filter(|d| d.is_ipv6() == ipv6) {
        for proto in ["udp", "tcp"] {
            r.push(format!(
                "-A {CHAIN} -d {dns} -p {proto} --dport 53 -j RETURN"
            ));
        }
    }
    let allowed: Vec<Cidr> = policy
        .allow
        .iter()
        .copied()
        .filter(|c| c.is_ipv6() == ipv6)
        .collect();
    if let Some(meta) = metadata(ipv6).filter(|m| !allowed.iter().any(|c| c.within(*m))) {
        r.push(format!("-A {CHAIN} -d {meta} -j DROP"));
    }
    let hosts = resolved
        .iter()
        .filter(|a| a.is_ipv6() == ipv6)
        .filter_map(|a| Cidr::try_from((*a, if ipv6 { 128 } else { 32 })).ok());
    let allowed: Vec<Cidr> = allowed.into_iter().chain(hosts).collect();
    let ports = |list: &[u16]| {
        list.iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    for net in allowed {
        if policy.tcp_ports.is_empty() && policy.udp_ports.is_empty() {
            r.push(format!("-A {CHAIN} -d {net} -j RETURN"));
            continue;
        }
        for (proto, list) in [("tcp", &policy.tcp_ports), ("udp", &policy.udp_ports)] {
            if !list.is_empty() {
                r.push(format!(
                    "-A {CHAIN} -d {net} -p {proto} -m multiport --dports {} -j RETURN",
                    ports(list)
                ));
            }
        }
    }
    if policy.report != EgressReport::Off {
        // Read back by the executor (the kernel's LOG stays silent in
        // namespaces other than the host's).
        r.push(format!(
            "-A {CHAIN} -m limit --limit 20/sec --limit-burst 50 {}",
            nflog::rule_target()
        ));
    }
    r.push(format!(
        "-A {CHAIN} -m limit --limit 10/min --limit-burst 5 -j LOG --log-prefix \"{LOG_PREFIX}\""
    ));
    r.push(format!("-A {CHAIN} -j DROP"));
    r.push("COMMIT".to_owned());
    r.join("\n") + "\n"
}

/// Loads the rules into the sandbox's network namespace; any failure is
/// fatal (a sandbox that asked for a policy never runs without it).
pub fn apply(
    policy: &EgressPolicy,
    resolved: &[IpAddr],
    inside: &Inside<BorrowedFd<'_>>,
) -> Result<(), Error> {
    let entered = inside.enter()?;
    for (tool, ipv6) in [("iptables-restore", false), ("ip6tables-restore", true)] {
        entered.run_with_input(tool, &["-w"], &rules(policy, resolved, ipv6))?;
    }
    Ok(())
}

/// How long a resolver may take to answer one lookup.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// Bounds on the time between two resolutions of a policy's domains:
/// their records' smallest TTL, within these.
const MIN_REFRESH: Duration = Duration::from_secs(5);
const MAX_REFRESH: Duration = Duration::from_secs(300);
/// At most this many distinct denied destinations are reported.
const MAX_REPORTED: usize = 4096;

/// The addresses of `policy`'s domains, and when to look again.
pub fn resolve(policy: &EgressPolicy) -> Result<(Vec<IpAddr>, Option<Instant>), Error> {
    if policy.domains.is_empty() {
        return Ok((Vec::new(), None));
    }
    let mut addrs = Vec::new();
    let mut ttl = MAX_REFRESH;
    for domain in &policy.domains {
        let answers =
            dns::resolve(domain, &policy.dns, LOOKUP_TIMEOUT).map_err(|e| Error::Setup {
                step: format!("--egress-allow {domain}"),
                source: std::io::Error::other(e.to_string()),
            })?;
        for a in answers {
            ttl = ttl.min(Duration::from_secs(u64::from(a.ttl)));
            if !addrs.contains(&a.addr) {
                addrs.push(a.addr);
            }
        }
    }
    addrs.sort();
    Ok((addrs, Some(Instant::now() + ttl.max(MIN_REFRESH))))
}

/// A running sandbox's egress: its domains looked up again within their
/// TTL (the rules replaced whole, atomically, when the addresses change)
/// and its denied destinations reported, each once.
pub struct Watch<'p> {
    policy: &'p EgressPolicy,
    sandbox: Inside<OwnedFd>,
    resolved: Vec<IpAddr>,
    refresh_at: Option<Instant>,
    report: Option<(nflog::Reader, Sink)>,
    seen: HashSet<nflog::Denied>,
}

/// Where denied destinations are written.
pub enum Sink {
    /// Lines for a person: our stderr, or the caller's (through the
    /// helper).
    Lines(Option<std::fs::File>),
    /// NDJSON to the caller's `--egress-report` file.
    Ndjson(std::fs::File),
}

impl<'p> Watch<'p> {
    pub fn new(
        policy: &'p EgressPolicy,
        (resolved, refresh_at): (Vec<IpAddr>, Option<Instant>),
        sandbox: Inside<OwnedFd>,
        report: Option<(nflog::Reader, Sink)>,
    ) -> Watch<'p> {
        Watch {
            policy,
            sandbox,
            resolved,
            refresh_at,
            report,
            seen: HashSet::new(),
        }
    }

    /// The descriptor to poll for denied packets (-1: none).
    pub fn denials_fd(&self) -> RawFd {
        self.report
            .as_ref()
            .map_or(-1, |(r, _)| r.as_fd().as_raw_fd())
    }

    pub fn refresh_at(&self) -> Option<Instant> {
        self.refresh_at
    }

    /// Looks the domains up again and reloads the rules if their
    /// addresses changed. A failed lookup keeps the addresses it has.
    pub fn refresh(&mut self) {
        match resolve(self.policy) {
            Ok((resolved, next)) => {
                self.refresh_at = next;
                if resolved == self.resolved {
                    return;
                }
                match apply(self.policy, &resolved, &self.sandbox.borrow()) {
                    Ok(()) => {
                        tracing::info!(?resolved, "egress: the allowed domains' addresses changed");
                        self.resolved = resolved;
                    }
                    Err(e) => eprintln!("nucleus: warning: egress: reloading the rules: {e}"),
                }
            }
            Err(e) => {
                eprintln!("nucleus: warning: egress: {e}; keeping the addresses it had");
                self.refresh_at = Some(Instant::now() + MIN_REFRESH * 6);
            }
        }
    }

    /// Reports what was denied since the last call, each destination once.
    pub fn report_denials(&mut self) {
        let Some((reader, sink)) = &mut self.report else {
            return;
        };
        let denied = match reader.read() {
            Ok(denied) => denied,
            Err(e) => {
                eprintln!("nucleus: warning: egress report: {e}; no more reports");
                self.report = None;
                return;
            }
        };
        for d in denied {
            // Multicast (the kernel's own MLD reports, say) is nothing the
            // workload tried to reach.
            if d.dst.is_multicast() || self.seen.len() >= MAX_REPORTED || !self.seen.insert(d) {
                continue;
            }
            let line = format!("nucleus: egress denied: {d}\n");
            let written = match sink {
                Sink::Ndjson(file) => file.write_all(ndjson(&d).as_bytes()),
                Sink::Lines(Some(file)) => file.write_all(line.as_bytes()),
                Sink::Lines(None) => std::io::stderr().write_all(line.as_bytes()),
            };
            if let Err(e) = written {
                eprintln!("nucleus: warning: egress report: {e}");
            }
        }
    }
}

/// One report line: `{"kind":"egress","proto":"tcp","dst":"192.0.2.7","port":443}`.
fn ndjson(d: &nflog::Denied) -> String {
    let port = d.port.map_or("null".to_owned(), |p| p.to_string());
    format!(
        "{{\"kind\":\"egress\",\"proto\":\"{}\",\"dst\":\"{}\",\"port\":{port}}}\n",
        d.proto, d.dst
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        let (a, p) = s.split_once('/').unwrap();
        Cidr::try_from((a.parse().unwrap(), p.parse().unwrap())).unwrap()
    }

    fn policy() -> EgressPolicy {
        EgressPolicy {
            allow: vec![cidr("192.0.2.0/24"), cidr("2001:db8::/32")],
            tcp_ports: vec![],
            udp_ports: vec![],
            dns: vec!["192.0.2.53".parse().unwrap()],
            domains: vec![],
            report: EgressReport::Off,
        }
    }

    #[test]
    fn ipv4_rules_are_exact() {
        assert_eq!(
            rules(&policy(), &[], false),
            "*filter
:NUCLEUS-EGRESS - [0:0]
-A OUTPUT -j NUCLEUS-EGRESS
-A NUCLEUS-EGRESS -o lo -j RETURN
-A NUCLEUS-EGRESS -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
-A NUCLEUS-EGRESS -d 192.0.2.53 -p udp --dport 53 -j RETURN
-A NUCLEUS-EGRESS -d 192.0.2.53 -p tcp --dport 53 -j RETURN
-A NUCLEUS-EGRESS -d 169.254.0.0/16 -j DROP
-A NUCLEUS-EGRESS -d 192.0.2.0/24 -j RETURN
-A NUCLEUS-EGRESS -m limit --limit 10/min --limit-burst 5 -j LOG --log-prefix \"nucleus-egress-denied: \"
-A NUCLEUS-EGRESS -j DROP
COMMIT
"
        );
    }

    #[test]
    fn ipv6_rules_and_ports_are_exact() {
        let mut p = policy();
        p.tcp_ports = vec![443, 80];
        p.udp_ports = vec![123];
        assert_eq!(
            rules(&p, &[], true),
            "*filter
:NUCLEUS-EGRESS - [0:0]
-A OUTPUT -j NUCLEUS-EGRESS
-A NUCLEUS-EGRESS -o lo -j RETURN
-A NUCLEUS-EGRESS -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
-A NUCLEUS-EGRESS -p ipv6-icmp -m icmp6 --icmpv6-type 133 -j RETURN
-A NUCLEUS-EGRESS -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j RETURN
-A NUCLEUS-EGRESS -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j RETURN
-A NUCLEUS-EGRESS -d fd00:ec2::254/128 -j DROP
-A NUCLEUS-EGRESS -d 2001:db8::/32 -p tcp -m multiport --dports 443,80 -j RETURN
-A NUCLEUS-EGRESS -d 2001:db8::/32 -p udp -m multiport --dports 123 -j RETURN
-A NUCLEUS-EGRESS -m limit --limit 10/min --limit-burst 5 -j LOG --log-prefix \"nucleus-egress-denied: \"
-A NUCLEUS-EGRESS -j DROP
COMMIT
"
        );
    }

    #[test]
    fn metadata_is_reachable_only_when_listed_inside_it() {
        let mut p = policy();
        p.allow = vec![cidr("0.0.0.0/0")];
        assert!(rules(&p, &[], false).contains("-d 169.254.0.0/16 -j DROP"));
        p.allow = vec![cidr("169.254.169.254/32")];
        assert!(!rules(&p, &[], false).contains("169.254.0.0/16"));
    }

    #[test]
    fn resolved_addresses_are_hosts_and_never_open_the_metadata_range() {
        let mut p = policy();
        p.allow = vec![];
        p.tcp_ports = vec![443];
        let resolved: Vec<IpAddr> = ["192.0.2.7", "169.254.169.254", "2001:db8::7"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let v4 = rules(&p, &resolved, false);
        // The metadata DROP comes first: a name resolving into it opens nothing.
        assert!(
            v4.contains(
                "-A NUCLEUS-EGRESS -d 169.254.0.0/16 -j DROP\n\
                 -A NUCLEUS-EGRESS -d 192.0.2.7/32 -p tcp -m multiport --dports 443 -j RETURN\n\
                 -A NUCLEUS-EGRESS -d 169.254.169.254/32 -p tcp -m multiport --dports 443 -j RETURN\n"
            ),
            "{v4}"
        );
        assert!(rules(&p, &resolved, true).contains(
            "-A NUCLEUS-EGRESS -d 2001:db8::7/128 -p tcp -m multiport --dports 443 -j RETURN"
        ));
    }

    #[test]
    fn a_reported_policy_sends_denials_to_the_log_group_before_dropping() {
        let mut p = policy();
        assert!(!rules(&p, &[], false).contains("NFLOG"));
        p.report = EgressReport::File;
        let text = rules(&p, &[], false);
        assert!(text.contains(
            "-A NUCLEUS-EGRESS -m limit --limit 20/sec --limit-burst 50 -j NFLOG --nflog-group 7 --nflog-size 64\n\
             -A NUCLEUS-EGRESS -m limit --limit 10/min"
        ), "{text}");
    }

    #[test]
    fn report_lines_are_json() {
        let d = nflog::Denied {
            proto: nflog::Proto::Tcp,
            dst: "192.0.2.7".parse().unwrap(),
            port: Some(443),
        };
        assert_eq!(
            ndjson(&d),
            "{\"kind\":\"egress\",\"proto\":\"tcp\",\"dst\":\"192.0.2.7\",\"port\":443}\n"
        );
        let icmp = nflog::Denied {
            proto: nflog::Proto::Icmp,
            dst: "2001:db8::1".parse().unwrap(),
            port: None,
        };
        assert_eq!(
            ndjson(&icmp),
            "{\"kind\":\"egress\",\"proto\":\"icmp\",\"dst\":\"2001:db8::1\",\"port\":null}\n"
        );
    }
}
