//! A small valid plan, for tests here and in the crates that apply plans
//! (feature `test-support`). Panics on bugs in itself only.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use crate::*;

fn path(s: &str) -> AbsPath {
    AbsPath::try_from(s).unwrap()
}

/// A valid plan: `/bin/true` in a read-only tmpfs root with `/usr` bound in.
pub fn sample_plan() -> Plan {
    let mut env = BTreeMap::new();
    env.insert(
        EnvName::try_from("PATH").unwrap(),
        Arg::try_from("/usr/bin:/bin").unwrap(),
    );
    Plan {
        mode: ServiceMode::Agent,
        name: Some(SandboxName::try_from("demo").unwrap()),
        hostname: Hostname::try_from("demo").unwrap(),
        namespaces: Namespaces { time: false },
        ids: IdMapping {
            uid_map: vec![IdMap::new(0, 1000, 1).unwrap()],
            gid_map: vec![IdMap::new(0, 1000, 1).unwrap()],
            uid: 0,
            gid: 0,
            groups: Vec::new(),
        },
        root: RootFs {
            source: RootSource::Tmpfs,
            read_only: true,
            overlay: None,
        },
        mounts: vec![
            Mount::Bind {
                source: path("/usr"),
                target: path("/usr"),
                read_only: true,
            },
            Mount::Symlink {
                target: path("/bin"),
                link_to: Arg::try_from("usr/bin").unwrap(),
            },
        ],
        process: Process {
            argv: Argv::try_from(vec![Arg::try_from("/bin/true").unwrap()]).unwrap(),
            env,
            cwd: AbsPath::root(),
            tty: false,
            init: false,
        },
        limits: Limits {
            timeout: None,
            memory: None,
            cpus: None,
            pids: None,
            io_weight: None,
        },
        hardening: Hardening::default(),
        security: Security {
            seccomp: SeccompProgram::try_from(vec![SockFilter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0x7fff_0000,
            }])
            .unwrap(),
            landlock: LandlockPolicy {
                handled: FsAccess::ALL,
                rules: vec![LandlockRule {
                    path: AbsPath::root(),
                    access: FsAccess::READ_EXECUTE,
                }],
                enforcement: Enforcement::BestAbi,
            },
            capabilities: Capabilities::NONE,
            allow_degraded: false,
            allow_chroot_fallback: false,
            log_denied: false,
            seccomp_mode: SeccompMode::Enforce,
        },
        network: NetworkMode::None,
        context: None,
        workspace: None,
        secrets: vec![],
    }
}
