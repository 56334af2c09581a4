//! The service modes' invariants (DESIGN.md, "Modes"), enforced in one
//! place: a pure function from the requested plan to the list of its
//! violations.

use protocol::{Mount, NetworkMode, Plan, ServiceMode};

/// Everything `plan` asks for that its mode forbids; empty when it may run.
pub fn violations(plan: &Plan) -> Vec<String> {
    let mut found = Vec::new();
    if plan.mode == ServiceMode::Agent {
        return found;
    }
    if plan.security.allow_degraded {
        found.push("--allow-degraded-security is only for agent mode".to_owned());
    }
    if plan.security.allow_chroot_fallback {
        found.push("--allow-chroot-fallback is only for agent mode".to_owned());
    }
    if plan.network == NetworkMode::Host {
        found.push("--network host is only for agent mode".to_owned());
    }
    if matches!(plan.network, NetworkMode::Bridge(_)) && !explicit_resolvers(plan) {
        found.push(
            "--network bridge needs explicit resolvers (--dns) outside agent mode, not the host's resolv.conf"
                .to_owned(),
        );
    }
    found
}

/// Whether the sandbox's /etc/resolv.conf is the plan's own (`--dns`).
fn explicit_resolvers(plan: &Plan) -> bool {
    plan.mounts
        .iter()
        .any(|m| matches!(m, Mount::File { target, .. } if target.as_str() == "/etc/resolv.conf"))
}

/// Whether a limit that cannot be enforced stops the sandbox (strict
/// modes) or only warns (agent mode).
pub fn unenforced_limits_are_fatal(mode: ServiceMode) -> bool {
    mode != ServiceMode::Agent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_mode_allows_the_escape_hatches() {
        let mut plan = protocol::testing::sample_plan();
        plan.security.allow_degraded = true;
        plan.security.allow_chroot_fallback = true;
        assert!(violations(&plan).is_empty());
        assert!(!unenforced_limits_are_fatal(ServiceMode::Agent));
    }

    #[test]
    fn strict_agent_forbids_them() {
        let mut plan = protocol::testing::sample_plan();
        plan.mode = ServiceMode::StrictAgent;
        assert!(violations(&plan).is_empty());
        plan.security.allow_degraded = true;
        plan.security.allow_chroot_fallback = true;
        plan.network = NetworkMode::Host;
        assert_eq!(violations(&plan).len(), 3);
        assert!(unenforced_limits_are_fatal(ServiceMode::StrictAgent));
    }

    #[test]
    fn strict_agent_bridges_need_explicit_resolvers() {
        let mut plan = protocol::testing::sample_plan();
        plan.mode = ServiceMode::StrictAgent;
        plan.network = NetworkMode::Bridge(protocol::Bridge {
            backend: protocol::NatBackend::Pasta,
            egress: None,
            publish: Vec::new(),
        });
        let found = violations(&plan);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("--dns"), "{found:?}");
        plan.mounts.push(Mount::File {
            target: protocol::AbsPath::try_from("/etc/resolv.conf".to_owned()).unwrap(),
            text: protocol::Arg::try_from("nameserver 192.0.2.53\n".to_owned()).unwrap(),
        });
        assert!(violations(&plan).is_empty());
    }
}
