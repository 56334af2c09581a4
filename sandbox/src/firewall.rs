//! The executor's side of a bridged sandbox's packet filtering: outbound
//! NAT for the bridge's subnet and the DNAT of published ports, behind a
//! small trait. The kernel backend uses iptables (iptables-nft is fine);
//! the userspace NATs forward ports themselves and touch no host table,
//! which is the no-op implementation. (Egress rules live in the
//! sandbox's own namespace, whatever the backend: see `egress`.)
//!
//! Every rule is built by a pure function as an argument list (tested as
//! exact text) and lives in a nucleus-named chain, so cleanup removes
//! exactly what was added, and rules towards an address whose lease is no
//! longer held are found and removed at the next start after a crash.

use std::net::Ipv4Addr;

use protocol::{KernelBridge, NatBackend, PublishedPort};

use crate::error::Error;

/// The filter chain nucleus owns: INPUT jumps to it first.
pub const INPUT: &str = "NUCLEUS-INPUT";
/// nat chains nucleus owns; the built-in chains jump to them.
pub const POSTROUTING: &str = "NUCLEUS-POSTROUTING";
pub const PREROUTING: &str = "NUCLEUS-PREROUTING";
pub const OUTPUT: &str = "NUCLEUS-OUTPUT";

/// One iptables rule: its chain and its match/target arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub chain: &'static str,
    pub spec: Vec<String>,
}

/// As `iptables -S` and `iptables-save` print it.
impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "-A {} {}", self.chain, self.spec.join(" "))
    }
}

impl Rule {
    fn new(chain: &'static str, spec: &[&str]) -> Rule {
        Rule {
            chain,
            spec: spec.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

pub trait Firewall {
    /// Outbound NAT for the bridge's subnet, and the jumps into the
    /// nucleus chains (added once, shared by every sandbox on it); then
    /// the forwarding towards every address `leased` says is no longer
    /// held (its sandbox died with its executor) is removed. Returns what
    /// failed of the latter, as text.
    fn prepare(
        &self,
        bridge: &KernelBridge,
        leased: &dyn Fn(Ipv4Addr) -> bool,
    ) -> Result<Vec<String>, Error>;
    /// Drops packets for the host's loopback that come in from the bridge
    /// and are not replies or DNAT (the kernel accepts them once
    /// route_localnet is on, which 127.0.0.1 publishing needs: CVE-2020-8558).
    fn guard_loopback(&self, bridge: &KernelBridge) -> Result<(), Error>;
    /// Forwards `ports` to the sandbox at `to`.
    fn publish(&self, ports: &[PublishedPort], to: Ipv4Addr) -> Result<(), Error>;
    /// Removes what `publish` added; what failed, as text.
    fn withdraw(&self, ports: &[PublishedPort], to: Ipv4Addr) -> Vec<String>;
}

/// The rules `masquerade` ensures, in order: the jumps from the built-in
/// chains (port forwarding only for packets to the host's own addresses)
/// and the subnet's MASQUERADE; loopback sources, which only a published
/// port's DNAT sends out of the bridge, are masqueraded too so
/// `127.0.0.1:PORT` works on the host, as with podman.
pub fn nat_rules(bridge: &KernelBridge) -> Vec<Rule> {
    let subnet = bridge.subnet.to_string();
    let name = bridge.name.as_str();
    vec![
        Rule::new("POSTROUTING", &["-j", POSTROUTING]),
        Rule::new(
            "PREROUTING",
            &["-m", "addrtype", "--dst-type", "LOCAL", "-j", PREROUTING],
        ),
        Rule::new(
            "OUTPUT",
            &["-m", "addrtype", "--dst-type", "LOCAL", "-j", OUTPUT],
        ),
        Rule::new(
            POSTROUTING,
            &["-s", &subnet, "!", "-o", name, "-j", "MASQUERADE"],
        ),
        Rule::new(
            POSTROUTING,
            &["-s", "127.0.0.0/8", "-o", name, "-j", "MASQUERADE"],
        ),
    ]
}

/// The filter rules of `guard_loopback`, in order: the jump (inserted
/// first in INPUT), then the drop.
pub fn loopback_guard(bridge: &KernelBridge) -> [Rule; 2] {
    [
        Rule::new("INPUT", &["-j", INPUT]),
        Rule::new(
            INPUT,
            &[
                "-d",
                "127.0.0.0/8",
                "-i",
                bridge.name.as_str(),
                "-m",
                "conntrack",
                "!",
                "--ctstate",
                "RELATED,ESTABLISHED,DNAT",
                "-j",
                "DROP",
            ],
        ),
    ]
}

/// The DNAT rules for `ports` towards `to`: one for packets arriving from
/// outside, one for the host's own connections.
pub fn publish_rules(ports: &[PublishedPort], to: Ipv4Addr) -> Vec<Rule> {
    let mut rules = Vec::new();
    for p in ports {
        let mut spec = Vec::new();
        if let Some(ip) = p.host_ip {
            spec.extend(["-d".to_owned(), format!("{ip}/32")]);
        }
        let proto = p.proto.as_str();
        spec.extend(
            [
                "-p",
                proto,
                "-m",
                proto,
                "--dport",
                &p.host_port.to_string(),
                "-j",
                "DNAT",
                "--to-destination",
                &format!("{to}:{}", p.port),
            ]
            .map(str::to_owned),
        );
        for chain in [PREROUTING, OUTPUT] {
            rules.push(Rule {
                chain,
                spec: spec.clone(),
            });
        }
    }
    rules
}

/// The address a `iptables -S` line of one of our DNAT rules forwards to.
fn dnat_target(line: &str) -> Option<Ipv4Addr> {
    let mut words = line.split_whitespace();
    words.find(|w| *w == "--to-destination")?;
    words.next()?.split(':').next()?.parse().ok()
}

/// iptables, in the executor's network namespace.
pub struct Iptables;

/// The userspace NATs, which forward ports themselves: nothing in the
/// host's tables.
pub struct NoFirewall;

/// The firewall a NAT backend uses on the executor's side.
pub fn for_backend(backend: &NatBackend) -> &'static dyn Firewall {
    match backend {
        NatBackend::Kernel(_) => &Iptables,
        NatBackend::Pasta | NatBackend::Slirp4netns => &NoFirewall,
    }
}

impl Iptables {
    fn run(args: &[&str]) -> Result<String, Error> {
        crate::tools::run("iptables", &[&["-w", "-t", "nat"], args].concat())
    }

    fn exists(rule: &Rule) -> bool {
        let spec: Vec<&str> = rule.spec.iter().map(String::as_str).collect();
        Self::run(&[&["-C", rule.chain], &spec[..]].concat()).is_ok()
    }

    fn add(rule: &Rule) -> Result<(), Error> {
        let spec: Vec<&str> = rule.spec.iter().map(String::as_str).collect();
        Self::run(&[&["-A", rule.chain], &spec[..]].concat()).map(drop)
    }

    fn delete(rule: &Rule) -> Result<(), Error> {
        let spec: Vec<&str> = rule.spec.iter().map(String::as_str).collect();
        Self::run(&[&["-D", rule.chain], &spec[..]].concat()).map(drop)
    }
}

impl Firewall for Iptables {
    fn prepare(
        &self,
        bridge: &KernelBridge,
        leased: &dyn Fn(Ipv4Addr) -> bool,
    ) -> Result<Vec<String>, Error> {
        // One listing instead of a check per rule: each iptables run
        // costs milliseconds of a sandbox's start.
        let listing = crate::tools::run("iptables-save", &["-t", "nat"])?;
        for chain in [POSTROUTING, PREROUTING, OUTPUT] {
            let declared = format!(":{chain} ");
            if !listing.lines().any(|l| l.starts_with(&declared)) {
                // Made by a concurrent start in between is fine too.
                let _ = Self::run(&["-N", chain]);
            }
        }
        for rule in nat_rules(bridge) {
            if !listing.lines().any(|l| l == rule.to_string()) && !Self::exists(&rule) {
                Self::add(&rule)?;
            }
        }
        Ok(stale_forwarding(&listing, leased)
            .iter()
            .filter_map(|rule| Self::delete(rule).err().map(|e| e.to_string()))
            .collect())
    }

    fn guard_loopback(&self, bridge: &KernelBridge) -> Result<(), Error> {
        let filter = |args: &[&str]| crate::tools::run("iptables", &[&["-w"], args].concat());
        if filter(&["-L", INPUT, "-n"]).is_err() {
            // Made by a concurrent start in between is fine too.
            let _ = filter(&["-N", INPUT]);
        }
        let [jump, drop] = loopback_guard(bridge);
        for (rule, at) in [(jump, "-I"), (drop, "-A")] {
            let spec: Vec<&str> = rule.spec.iter().map(String::as_str).collect();
            if filter(&[&["-C", rule.chain], &spec[..]].concat()).is_err() {
                filter(&[&[at, rule.chain], &spec[..]].concat())?;
            }
        }
        Ok(())
    }

    fn publish(&self, ports: &[PublishedPort], to: Ipv4Addr) -> Result<(), Error> {
        for rule in publish_rules(ports, to) {
            Self::add(&rule)?;
        }
        Ok(())
    }

    fn withdraw(&self, ports: &[PublishedPort], to: Ipv4Addr) -> Vec<String> {
        publish_rules(ports, to)
            .iter()
            .filter_map(|rule| Self::delete(rule).err().map(|e| e.to_string()))
            .collect()
    }
}

/// The DNAT rules in `listing` (`iptables-save` or `-S` output, where each
/// rule is the `-A CHAIN ...` that made it) towards addresses no longer
/// `leased`.
fn stale_forwarding(listing: &str, leased: &dyn Fn(Ipv4Addr) -> bool) -> Vec<Rule> {
    let mut stale = Vec::new();
    for chain in [PREROUTING, OUTPUT] {
        let prefix = format!("-A {chain} ");
        for line in listing.lines() {
            let Some(spec) = line.strip_prefix(&prefix) else {
                continue;
            };
            if dnat_target(line).is_some_and(|to| !leased(to)) {
                stale.push(Rule {
                    chain,
                    spec: spec.split_whitespace().map(str::to_owned).collect(),
                });
            }
        }
    }
    stale
}

impl Firewall for NoFirewall {
    fn guard_loopback(&self, _: &KernelBridge) -> Result<(), Error> {
        Ok(())
    }

    fn prepare(
        &self,
        _: &KernelBridge,
        _: &dyn Fn(Ipv4Addr) -> bool,
    ) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }

    fn publish(&self, _: &[PublishedPort], _: Ipv4Addr) -> Result<(), Error> {
        Ok(())
    }

    fn withdraw(&self, _: &[PublishedPort], _: Ipv4Addr) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{BridgeName, Ipv4Subnet, Proto};
    use std::num::NonZeroU16;

    fn text(rules: &[Rule]) -> Vec<String> {
        rules.iter().map(Rule::to_string).collect()
    }

    #[test]
    fn nat_rules_exact() {
        let bridge = KernelBridge {
            name: BridgeName::try_from("nucleus0".to_owned()).unwrap(),
            subnet: Ipv4Subnet::try_from((Ipv4Addr::new(10, 88, 0, 0), 16)).unwrap(),
        };
        assert_eq!(
            text(&nat_rules(&bridge)),
            [
                "-A POSTROUTING -j NUCLEUS-POSTROUTING",
                "-A PREROUTING -m addrtype --dst-type LOCAL -j NUCLEUS-PREROUTING",
                "-A OUTPUT -m addrtype --dst-type LOCAL -j NUCLEUS-OUTPUT",
                "-A NUCLEUS-POSTROUTING -s 10.88.0.0/16 ! -o nucleus0 -j MASQUERADE",
                "-A NUCLEUS-POSTROUTING -s 127.0.0.0/8 -o nucleus0 -j MASQUERADE",
            ]
        );
    }

    #[test]
    fn loopback_guard_exact() {
        let bridge = KernelBridge {
            name: BridgeName::try_from("nucleus0".to_owned()).unwrap(),
            subnet: Ipv4Subnet::try_from((Ipv4Addr::new(10, 88, 0, 0), 16)).unwrap(),
        };
        assert_eq!(
            text(&loopback_guard(&bridge)),
            [
                "-A INPUT -j NUCLEUS-INPUT",
                "-A NUCLEUS-INPUT -d 127.0.0.0/8 -i nucleus0 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
            ]
        );
    }

    #[test]
    fn publish_rules_exact_and_swept_by_target() {
        let port = |ip, host, inner, proto| PublishedPort {
            host_ip: ip,
            host_port: NonZeroU16::new(host).unwrap(),
            port: NonZeroU16::new(inner).unwrap(),
            proto,
        };
        let to = Ipv4Addr::new(10, 88, 0, 2);
        let rules = publish_rules(
            &[
                port(None, 8080, 80, Proto::Tcp),
                port(Some(Ipv4Addr::new(192, 0, 2, 1)), 5353, 53, Proto::Udp),
            ],
            to,
        );
        let lines = text(&rules);
        assert_eq!(
            lines,
            [
                "-A NUCLEUS-PREROUTING -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.2:80",
                "-A NUCLEUS-OUTPUT -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.2:80",
                "-A NUCLEUS-PREROUTING -d 192.0.2.1/32 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.88.0.2:53",
                "-A NUCLEUS-OUTPUT -d 192.0.2.1/32 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.88.0.2:53",
            ]
        );
        for line in &lines {
            assert_eq!(dnat_target(line), Some(to));
        }
        assert_eq!(dnat_target("-A NUCLEUS-OUTPUT -j RETURN"), None);
        let listing = format!(
            "*nat\n:NUCLEUS-OUTPUT - [0:0]\n{}\nCOMMIT\n",
            lines.join("\n")
        );
        assert_eq!(stale_forwarding(&listing, &|_| true), []);
        let stale = stale_forwarding(&listing, &|a| a != to);
        assert_eq!(stale.len(), rules.len());
        assert!(rules.iter().all(|r| stale.contains(r)));
    }
}
