//! Egress rules for a sandbox's own network namespace, built by pure
//! functions as `iptables-restore` input (tested as exact text) and loaded
//! by the executor into the namespace, IPv4 and IPv6 alike. Everything
//! lives in the `NUCLEUS-EGRESS` chain, which OUTPUT jumps to.

use std::io::Write;
use std::net::IpAddr;
use std::process::Stdio;

use protocol::{Cidr, EgressPolicy};

use crate::error::Error;
use crate::tools::Inside;

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

/// The `iptables-restore` (or `ip6tables-restore`) input for `policy`.
pub fn rules(policy: &EgressPolicy, ipv6: bool) -> String {
    let mut r = vec![
        "*filter".to_owned(),
        format!(":{CHAIN} - [0:0]"),
        format!("-A OUTPUT -j {CHAIN}"),
        format!("-A {CHAIN} -o lo -j RETURN"),
        format!("-A {CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"),
    ];
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
    r.push(format!(
        "-A {CHAIN} -m limit --limit 10/min --limit-burst 5 -j LOG --log-prefix \"{LOG_PREFIX}\""
    ));
    r.push(format!("-A {CHAIN} -j DROP"));
    r.push("COMMIT".to_owned());
    r.join("\n") + "\n"
}

/// Loads the rules into the sandbox's network namespace; any failure is
/// fatal (a sandbox that asked for a policy never runs without it).
pub fn apply(policy: &EgressPolicy, inside: &Inside<'_>) -> Result<(), Error> {
    let entered = inside.enter()?;
    for (tool, ipv6) in [("iptables-restore", false), ("ip6tables-restore", true)] {
        let failed = |detail: String| Error::Setup {
            step: format!("loading the egress rules ({tool})"),
            source: std::io::Error::other(detail),
        };
        let mut child = entered
            .nsenter(tool)
            .arg("-w")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(rules(policy, ipv6).as_bytes())
                .map_err(|e| failed(e.to_string()))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| failed(e.to_string()))?;
        if !out.status.success() {
            return Err(failed(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
    }
    Ok(())
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
        }
    }

    #[test]
    fn ipv4_rules_are_exact() {
        assert_eq!(
            rules(&policy(), false),
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
            rules(&p, true),
            "*filter
:NUCLEUS-EGRESS - [0:0]
-A OUTPUT -j NUCLEUS-EGRESS
-A NUCLEUS-EGRESS -o lo -j RETURN
-A NUCLEUS-EGRESS -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
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
        assert!(rules(&p, false).contains("-d 169.254.0.0/16 -j DROP"));
        p.allow = vec![cidr("169.254.169.254/32")];
        assert!(!rules(&p, false).contains("169.254.0.0/16"));
    }
}
