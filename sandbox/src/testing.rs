//! A small valid plan for unit tests.

use std::collections::BTreeMap;

use protocol::*;

pub fn plan() -> Plan {
    Plan {
        name: None,
        hostname: Hostname::try_from("test").unwrap(),
        namespaces: Namespaces { time: false },
        ids: IdMapping {
            uid_map: vec![IdMap::new(0, 1000, 1).unwrap()],
            gid_map: vec![IdMap::new(0, 1000, 1).unwrap()],
            uid: 0,
            gid: 0,
        },
        root: RootFs {
            source: RootSource::Tmpfs,
            read_only: false,
        },
        mounts: vec![],
        process: Process {
            argv: Argv::try_from(vec![Arg::try_from("true").unwrap()]).unwrap(),
            env: BTreeMap::new(),
            cwd: AbsPath::root(),
            tty: false,
        },
        limits: Limits { timeout: None },
        security: Security {
            seccomp: SeccompProgram::try_from(vec![SockFilter {
                code: 6,
                jt: 0,
                jf: 0,
                k: 0x7fff_0000,
            }])
            .unwrap(),
            landlock: LandlockPolicy {
                handled: FsAccess::ALL,
                rules: vec![],
                enforcement: Enforcement::BestAbi,
            },
            allow_degraded: false,
            allow_chroot_fallback: false,
        },
        network: NetworkMode::None,
    }
}
