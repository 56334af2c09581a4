//! The service modes' invariants (DESIGN.md, "Modes"), enforced in one
//! place: a pure function from the requested plan to the plan the mode
//! makes of it, or the list of everything the mode forbids.
//!
//! | | agent | strict-agent | production |
//! |---|---|---|---|
//! | degraded security, chroot fallback | with flag | refused | refused |
//! | host network | with flag | refused | refused |
//! | bridge without `--dns` | host's resolv.conf | refused | refused |
//! | root mapped to root (no remapping) | allowed | refused | refused |
//! | Landlock | best the kernel has, skipped only with the flag | enforced (any ABI) | ABI 3 at least |
//! | memory limit | optional | optional | required |
//! | root filesystem | host binds or `--rootfs` | same | `--rootfs` |
//! | egress with `--network bridge` | open unless a policy | same | deny-all unless a policy |
//! | PID 1 | the workload (`--init`: mini-init) | same | mini-init |
//! | /proc | every process | same | hidepid=2 |
//! | mount audit after setup | no | yes | yes |
//! | seccomp trace mode | allowed | refused | refused |
//!
//! Limits that cannot be enforced are fatal outside agent mode
//! ([`unenforced_limits_are_fatal`]).

use protocol::{
    Bridge, EgressPolicy, EgressReport, Enforcement, MemoryLimit, Mount, NetworkMode, Plan,
    RootSource, SeccompMode, ServiceMode,
};

/// The Landlock ABI production mode requires at least (3: truncation is
/// restricted too).
pub const PRODUCTION_LANDLOCK_ABI: u32 = 3;

/// The plan `plan.mode` makes of `plan`, or everything it forbids.
pub fn enforce(mut plan: Plan) -> Result<Plan, Vec<String>> {
    if plan.mode == ServiceMode::Agent {
        return Ok(plan);
    }
    let mut found = Vec::new();
    if plan.security.allow_degraded {
        found.push("--allow-degraded-security is only for agent mode".to_owned());
    }
    if plan.security.allow_chroot_fallback {
        found.push("--allow-chroot-fallback is only for agent mode".to_owned());
    }
    if plan.network == NetworkMode::Host {
        found.push("--network host is only for agent mode".to_owned());
    }
    let resolvers = explicit_resolvers(&plan);
    if matches!(plan.network, NetworkMode::Bridge(_)) && resolvers.is_none() {
        found.push(
            "--network bridge needs explicit resolvers (--dns) outside agent mode, not the host's resolv.conf"
                .to_owned(),
        );
    }
    let root_outside = plan.ids.uid_map.iter().any(|m| m.outside() == 0)
        || plan.ids.gid_map.iter().any(|m| m.outside() == 0);
    if root_outside {
        found.push(format!(
            "{} mode maps no id to the host's root: run as root, use --userns subids (or keep-id) so the sandbox's ids are not the host's",
            plan.mode
        ));
    }
    match plan.security.seccomp_mode {
        SeccompMode::Enforce => {}
        SeccompMode::Trace => found
            .push("--seccomp-mode trace records instead of filtering: agent mode only".to_owned()),
        // Production's denials are the kernel's to answer, not a thread's
        // in nucleus: the audit log has them (--seccomp-log-denied).
        SeccompMode::Report if plan.mode == ServiceMode::Production => found.push(
            "--violations answers denied system calls from nucleus's own process: agent modes only (use --seccomp-log-denied)"
                .to_owned(),
        ),
        SeccompMode::Report => {}
    }
    plan.hardening.audit_mounts = true;
    let landlock = &mut plan.security.landlock;
    // Strict-agent: Landlock is enforced, never skipped, at whatever ABI
    // the kernel has (the rights it lacks are not restricted: Debian 12's
    // 6.1 has ABI 2); production: ABI 3 at least.
    let floor = match plan.mode {
        ServiceMode::Production => PRODUCTION_LANDLOCK_ABI,
        _ => 1,
    };
    landlock.enforcement = match landlock.enforcement {
        Enforcement::MinimumAbi(abi) => Enforcement::MinimumAbi(abi.max(floor)),
        Enforcement::BestAbi => Enforcement::MinimumAbi(floor),
    };
    if plan.mode == ServiceMode::Production {
        if !matches!(plan.limits.memory, Some(MemoryLimit::Bytes(_))) {
            found.push("production mode needs a memory limit (--memory)".to_owned());
        }
        if !matches!(plan.root.source, RootSource::Directory(_)) {
            found.push(
                "production mode runs from its own root (--rootfs DIR, e.g. a Nix closure), not the host's directories"
                    .to_owned(),
            );
        }
        if let NetworkMode::Bridge(Bridge { egress, .. }) = &mut plan.network {
            if egress.is_none() {
                *egress = Some(EgressPolicy {
                    allow: Vec::new(),
                    domains: Vec::new(),
                    tcp_ports: Vec::new(),
                    udp_ports: Vec::new(),
                    dns: resolvers.unwrap_or_default(),
                    report: EgressReport::Off,
                });
            }
        }
        plan.process.init = true;
        plan.hardening.hide_pids = true;
    }
    if found.is_empty() {
        Ok(plan)
    } else {
        Err(found)
    }
}

/// `--trust-level`: how far the workload is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    Trusted,
    /// Never the host's network; meant for the gVisor runtime, which
    /// nucleus does not have yet: until then only agent mode's
    /// `--allow-degraded-security` runs it, under the regular sandbox.
    Untrusted,
}

/// What an untrusted workload may not have, or a warning when it runs
/// without the stronger runtime it should get.
pub fn check_trust(trust: Trust, plan: &Plan) -> Result<Option<String>, Vec<String>> {
    if trust == Trust::Trusted {
        return Ok(None);
    }
    let mut found = Vec::new();
    if plan.network == NetworkMode::Host {
        found.push("--trust-level untrusted never gets the host's network".to_owned());
    }
    if !plan.security.allow_degraded {
        found.push(
            "--trust-level untrusted needs the gVisor runtime, which this nucleus does not have yet; in agent mode, --allow-degraded-security runs it under the regular sandbox"
                .to_owned(),
        );
    }
    if found.is_empty() {
        Ok(Some(
            "--trust-level untrusted: no gVisor runtime here; running under the regular sandbox (--allow-degraded-security)"
                .to_owned(),
        ))
    } else {
        Err(found)
    }
}

/// The resolvers of the plan's own /etc/resolv.conf (`--dns`), if it has one.
fn explicit_resolvers(plan: &Plan) -> Option<Vec<std::net::IpAddr>> {
    plan.mounts.iter().find_map(|m| match m {
        Mount::File { target, text } if target.as_str() == "/etc/resolv.conf" => Some(
            text.as_str()
                .lines()
                .filter_map(|l| l.strip_prefix("nameserver "))
                .filter_map(|ip| ip.trim().parse().ok())
                .collect(),
        ),
        _ => None,
    })
}

/// Whether a limit that cannot be enforced stops the sandbox (strict
/// modes) or only warns (agent mode).
pub fn unenforced_limits_are_fatal(mode: ServiceMode) -> bool {
    mode != ServiceMode::Agent
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{AbsPath, Arg, IdMap};

    fn plan(mode: ServiceMode) -> Plan {
        let mut plan = protocol::testing::sample_plan();
        plan.mode = mode;
        plan
    }

    fn refused(plan: Plan, needle: &str) {
        let found = enforce(plan).unwrap_err();
        assert!(
            found.iter().any(|f| f.contains(needle)),
            "{needle}: {found:?}"
        );
    }

    fn bridged(plan: &mut Plan) {
        plan.network = NetworkMode::Bridge(Bridge {
            backend: protocol::NatBackend::Pasta,
            egress: None,
            publish: Vec::new(),
        });
    }

    fn with_dns(plan: &mut Plan) {
        plan.mounts.push(Mount::File {
            target: AbsPath::try_from("/etc/resolv.conf".to_owned()).unwrap(),
            text: Arg::try_from("nameserver 192.0.2.53\n".to_owned()).unwrap(),
        });
    }

    /// What production needs beyond strict-agent.
    fn production() -> Plan {
        let mut p = plan(ServiceMode::Production);
        p.limits.memory = Some(MemoryLimit::Bytes(64 << 20));
        p.root.source = RootSource::Directory(AbsPath::try_from("/srv/root".to_owned()).unwrap());
        p
    }

    #[test]
    fn agent_mode_takes_the_plan_as_it_is() {
        let mut p = plan(ServiceMode::Agent);
        p.security.allow_degraded = true;
        p.security.allow_chroot_fallback = true;
        p.network = NetworkMode::Host;
        p.ids.uid_map = vec![IdMap::new(0, 0, 1).unwrap()];
        assert_eq!(enforce(p.clone()), Ok(p));
        assert!(!unenforced_limits_are_fatal(ServiceMode::Agent));
    }

    #[test]
    fn row_degraded_security_and_chroot_fallback() {
        for mode in [ServiceMode::StrictAgent, ServiceMode::Production] {
            let mut p = if mode == ServiceMode::Production {
                production()
            } else {
                plan(mode)
            };
            p.security.allow_degraded = true;
            refused(
                p.clone(),
                "--allow-degraded-security is only for agent mode",
            );
            p.security.allow_degraded = false;
            p.security.allow_chroot_fallback = true;
            refused(p, "--allow-chroot-fallback is only for agent mode");
            assert!(unenforced_limits_are_fatal(mode));
        }
    }

    #[test]
    fn row_trace_mode() {
        let mut p = plan(ServiceMode::StrictAgent);
        p.security.seccomp_mode = SeccompMode::Trace;
        refused(p, "--seccomp-mode trace");
        let mut p = production();
        p.security.seccomp_mode = SeccompMode::Trace;
        refused(p, "--seccomp-mode trace");
        let mut p = plan(ServiceMode::Agent);
        p.security.seccomp_mode = SeccompMode::Trace;
        assert!(enforce(p).is_ok());
    }

    #[test]
    fn row_violations_report() {
        let mut p = production();
        p.security.seccomp_mode = SeccompMode::Report;
        refused(p, "--violations answers denied system calls");
        for mode in [ServiceMode::Agent, ServiceMode::StrictAgent] {
            let mut p = plan(mode);
            p.security.seccomp_mode = SeccompMode::Report;
            assert!(enforce(p).is_ok(), "{mode}");
        }
    }

    #[test]
    fn row_host_network() {
        let mut p = plan(ServiceMode::StrictAgent);
        p.network = NetworkMode::Host;
        refused(p, "--network host is only for agent mode");
        let mut p = production();
        p.network = NetworkMode::Host;
        refused(p, "--network host is only for agent mode");
    }

    #[test]
    fn row_explicit_dns_for_bridges() {
        let mut p = plan(ServiceMode::StrictAgent);
        bridged(&mut p);
        refused(p.clone(), "--dns");
        with_dns(&mut p);
        assert!(enforce(p).is_ok());
    }

    #[test]
    fn row_no_root_mapped_to_root() {
        let mut p = plan(ServiceMode::StrictAgent);
        p.ids.uid_map = vec![IdMap::new(0, 0, 1).unwrap()];
        refused(p, "maps no id to the host's root");
    }

    #[test]
    fn row_landlock_floor() {
        let strict = enforce(plan(ServiceMode::StrictAgent)).unwrap();
        assert_eq!(
            strict.security.landlock.enforcement,
            Enforcement::MinimumAbi(1)
        );
        let mut p = plan(ServiceMode::StrictAgent);
        p.security.landlock.enforcement = Enforcement::MinimumAbi(4);
        let strict = enforce(p).unwrap();
        assert_eq!(
            strict.security.landlock.enforcement,
            Enforcement::MinimumAbi(4)
        );
        let prod = enforce(production()).unwrap();
        assert_eq!(
            prod.security.landlock.enforcement,
            Enforcement::MinimumAbi(PRODUCTION_LANDLOCK_ABI)
        );
    }

    #[test]
    fn row_memory_limit_and_own_root_in_production() {
        let mut p = production();
        p.limits.memory = None;
        refused(p, "--memory");
        let mut p = production();
        p.root.source = RootSource::Tmpfs;
        refused(p, "--rootfs");
        // Neither is required in strict-agent.
        assert!(enforce(plan(ServiceMode::StrictAgent)).is_ok());
    }

    #[test]
    fn untrusted_needs_gvisor_or_the_degraded_flag_and_never_the_host_network() {
        let p = plan(ServiceMode::Agent);
        assert_eq!(check_trust(Trust::Trusted, &p), Ok(None));
        let found = check_trust(Trust::Untrusted, &p).unwrap_err();
        assert!(found[0].contains("gVisor"), "{found:?}");
        let mut p = plan(ServiceMode::Agent);
        p.security.allow_degraded = true;
        assert!(check_trust(Trust::Untrusted, &p).unwrap().is_some());
        p.network = NetworkMode::Host;
        let found = check_trust(Trust::Untrusted, &p).unwrap_err();
        assert!(found[0].contains("host's network"), "{found:?}");
    }

    #[test]
    fn row_production_defaults_init_hidepid_and_deny_all_egress() {
        let mut p = production();
        bridged(&mut p);
        with_dns(&mut p);
        let prod = enforce(p).unwrap();
        assert!(prod.process.init);
        assert!(prod.hardening.hide_pids && prod.hardening.audit_mounts);
        let NetworkMode::Bridge(bridge) = prod.network else {
            panic!("still bridged")
        };
        let egress = bridge.egress.unwrap();
        assert!(egress.allow.is_empty() && egress.domains.is_empty());
        assert_eq!(
            egress.dns,
            ["192.0.2.53".parse::<std::net::IpAddr>().unwrap()]
        );
        let strict = enforce(plan(ServiceMode::StrictAgent)).unwrap();
        assert!(!strict.process.init && !strict.hardening.hide_pids);
        assert!(strict.hardening.audit_mounts);
    }
}
