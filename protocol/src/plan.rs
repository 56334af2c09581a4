//! The Plan: everything needed to build one sandbox, resolved to exact
//! values. The front end compiles a user's request into a Plan; the
//! executors apply it and decide nothing themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

use crate::agent::{Context, ContextMode, OverlayUpper, Secret, Workspace};
use crate::names::{Arg, EnvName, Hostname, SandboxName};
use crate::network::NetworkMode;
use crate::path::AbsPath;
use crate::security::Security;

/// Most lines the kernel accepts in a `uid_map`/`gid_map`.
pub const MAX_ID_MAP_LINES: usize = 340;
pub const MAX_MOUNTS: usize = 1024;
pub const MAX_ARGS: usize = 16 * 1024;
pub const MAX_ENV: usize = 16 * 1024;
pub const MAX_LANDLOCK_RULES: usize = 1024;
pub const MAX_SECRETS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("argv is empty: a command is required")]
    EmptyArgv,
    #[error("too many {what}: {count} (at most {max})")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("id map entry inside={inside} outside={outside} count={count} is empty or overflows")]
    IdMapRange {
        inside: u32,
        outside: u32,
        count: u32,
    },
    #[error("{which} map ranges overlap")]
    IdMapOverlap { which: &'static str },
    #[error("workload {which} {id} is not mapped in the user namespace")]
    IdUnmapped { which: &'static str, id: u32 },
    #[error(
        "mount target {0} is the root or lies under /proc, /sys or /dev, which the sandbox owns"
    )]
    ReservedTarget(AbsPath),
    #[error("two mounts target {0}")]
    DuplicateTarget(AbsPath),
    #[error("mount target {target} lies beneath symlink {link}")]
    BeneathSymlink { target: AbsPath, link: AbsPath },
    #[error("seccomp program has {0} instructions (1 to 4096 allowed)")]
    SeccompLength(usize),
    #[error("landlock access bits {0:#x} include unknown rights")]
    LandlockAccess(u64),
    #[error("capability bits {0:#x} include unknown capabilities")]
    CapabilityBits(u64),
    #[error("ambient capabilities {0} are not in the bounding set")]
    AmbientNotBounding(String),
    #[error("landlock minimum ABI {0} is outside 1-{max}", max = crate::security::LANDLOCK_MAX_ABI)]
    LandlockAbi(u32),
    #[error("landlock rule for {0} grants rights the ruleset does not handle")]
    LandlockUnhandled(AbsPath),
    #[error("an overlay mount needs an overlay root to store its writes")]
    OverlayWithoutStorage,
    #[error("context integrity can only be verified for a copied context")]
    VerifyBind,
    #[error("two secrets are named {0}")]
    DuplicateSecret(String),
    #[error("{0} limit must be above zero")]
    ZeroLimit(&'static str),
    #[error("timeout must be at least one second")]
    ZeroTimeout,
    #[error("io weight {0} is outside 1-10000")]
    IoWeight(u16),
    #[error("bridge name {0:?} must be 1-15 characters of [a-z0-9_-], starting with a letter")]
    BridgeName(String),
    #[error("subnet {0} must be an IPv4 network address with a prefix from /8 to /30, like 10.88.0.0/16")]
    Subnet(String),
    #[error(
        "{0} is not a network: its address has bits set past the prefix, or the prefix is too long"
    )]
    Cidr(String),
    #[error(
        "slirp4netns cannot publish ports; use pasta (--nat-backend pasta) or the kernel bridge"
    )]
    PublishUnsupported,
    #[error("host port {0} is published twice")]
    PublishTwice(String),
    #[error("supplementary groups leave setgroups allowed in the user namespace, so the workload may not keep CAP_SETGID (it could drop a group that a host file's ACL denies)")]
    GroupsWithSetgid,
    #[error("{input:?} is not a domain name: {why}")]
    Domain { input: String, why: &'static str },
}

/// Namespaces beyond the ones every sandbox gets. User, mount, pid, uts,
/// ipc, cgroup and net namespaces are always new: not fields, so a plan
/// cannot share them with the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespaces {
    /// A new time namespace (opt-in: clocks stay the host's otherwise).
    pub time: bool,
}

/// One line of a uid or gid map: `count` ids from `inside` map to `outside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "(u32, u32, u32)", into = "(u32, u32, u32)")]
pub struct IdMap {
    inside: u32,
    outside: u32,
    count: u32,
}

impl IdMap {
    pub fn new(inside: u32, outside: u32, count: u32) -> Result<Self, PlanError> {
        let fits = |start: u32| start.checked_add(count - 1).is_some();
        if count == 0 || !fits(inside) || !fits(outside) {
            return Err(PlanError::IdMapRange {
                inside,
                outside,
                count,
            });
        }
        Ok(IdMap {
            inside,
            outside,
            count,
        })
    }

    pub fn inside(&self) -> u32 {
        self.inside
    }

    pub fn outside(&self) -> u32 {
        self.outside
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether inside id `id` falls in this line.
    pub fn contains_inside(&self, id: u32) -> bool {
        id >= self.inside && id - self.inside < self.count
    }
}

impl TryFrom<(u32, u32, u32)> for IdMap {
    type Error = PlanError;

    fn try_from((inside, outside, count): (u32, u32, u32)) -> Result<Self, Self::Error> {
        IdMap::new(inside, outside, count)
    }
}

impl From<IdMap> for (u32, u32, u32) {
    fn from(m: IdMap) -> Self {
        (m.inside, m.outside, m.count)
    }
}

/// The user namespace's maps and the identity the workload runs as inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdMapping {
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (`--additional-group`), inside ids; empty: none.
    pub groups: Vec<u32>,
}

/// Most supplementary groups a workload gets.
pub const MAX_GROUPS: usize = 32;

/// What the root of the sandbox is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootSource {
    /// A fresh, empty tmpfs; the host directories it needs arrive as mounts.
    Tmpfs,
    /// A host directory, bind-mounted as the root.
    Directory(AbsPath),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootFs {
    pub source: RootSource,
    pub read_only: bool,
    /// Make the root the lower layer of an overlayfs whose upper layer is
    /// this, so the workload can write anywhere and the writes stay apart.
    pub overlay: Option<OverlayUpper>,
}

/// One entry of the mount list, applied in order on top of the root. Every
/// mount is `nosuid,nodev`; binds are recursive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mount {
    Bind {
        source: AbsPath,
        target: AbsPath,
        read_only: bool,
    },
    Tmpfs {
        target: AbsPath,
        size_bytes: u64,
    },
    /// A symlink created in the root, e.g. `/bin -> usr/bin` on merged-/usr hosts.
    Symlink {
        target: AbsPath,
        link_to: Arg,
    },
    /// A small host file copied into the root (a snapshot, cheaper than a
    /// mount: `/etc/passwd`, `/etc/hosts`, ...). At most [`MAX_COPY_BYTES`].
    CopyFile {
        source: AbsPath,
        target: AbsPath,
    },
    /// A host directory as the read-only lower layer of an overlay whose
    /// writes go to the root's overlay storage (only with `RootFs::overlay`).
    Overlay {
        lower: AbsPath,
        target: AbsPath,
    },
    /// A small file the plan spells out, written into the root (mode 0644):
    /// `/etc/resolv.conf` from `--dns`.
    File {
        target: AbsPath,
        text: Arg,
    },
}

/// Largest file a `Mount::CopyFile` copies.
pub const MAX_COPY_BYTES: u64 = 4 * 1024 * 1024;

impl Mount {
    pub fn target(&self) -> &AbsPath {
        match self {
            Mount::Bind { target, .. }
            | Mount::Tmpfs { target, .. }
            | Mount::CopyFile { target, .. }
            | Mount::Overlay { target, .. }
            | Mount::File { target, .. } => target,
            Mount::Symlink { target, .. } => target,
        }
    }
}

/// The command line: at least one argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Arg>", into = "Vec<Arg>")]
pub struct Argv(Vec<Arg>);

impl Argv {
    pub fn program(&self) -> &Arg {
        // The constructor guarantees at least one element.
        &self.0[0]
    }

    pub fn args(&self) -> &[Arg] {
        &self.0
    }
}

impl TryFrom<Vec<Arg>> for Argv {
    type Error = PlanError;

    fn try_from(v: Vec<Arg>) -> Result<Self, Self::Error> {
        if v.is_empty() {
            return Err(PlanError::EmptyArgv);
        }
        if v.len() > MAX_ARGS {
            return Err(PlanError::TooMany {
                what: "arguments",
                count: v.len(),
                max: MAX_ARGS,
            });
        }
        Ok(Argv(v))
    }
}

impl From<Argv> for Vec<Arg> {
    fn from(a: Argv) -> Self {
        a.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    pub argv: Argv,
    /// The complete environment: nothing is inherited from the caller.
    pub env: BTreeMap<EnvName, Arg>,
    pub cwd: AbsPath,
    /// Give the workload a new pseudo-terminal as its controlling tty.
    pub tty: bool,
    /// A mini-init is PID 1 (reaps orphans, forwards signals, exits with
    /// the workload's status); otherwise the workload is.
    pub init: bool,
}

/// Restrictions beyond the defaults, which production mode turns on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hardening {
    /// /proc shows only the workload's own uid's processes (hidepid=2).
    pub hide_pids: bool,
    /// After setup, the sandbox checks its own mount table against the
    /// flags it mounted with; a mismatch is fatal.
    pub audit_mounts: bool,
}

/// Wall-clock limit, whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Timeout(NonZeroU32);

impl Timeout {
    pub fn secs(self) -> u32 {
        self.0.get()
    }
}

impl TryFrom<u32> for Timeout {
    type Error = PlanError;

    fn try_from(secs: u32) -> Result<Self, Self::Error> {
        NonZeroU32::new(secs)
            .map(Timeout)
            .ok_or(PlanError::ZeroTimeout)
    }
}

impl From<Timeout> for u32 {
    fn from(t: Timeout) -> u32 {
        t.0.get()
    }
}

/// A memory ceiling: `max` (none) or a number of bytes, at least one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemoryLimit {
    Max,
    Bytes(#[serde(deserialize_with = "at_least_a_page")] u64),
}

pub const PAGE_BYTES: u64 = 4096;

fn at_least_a_page<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let bytes = u64::deserialize(d)?;
    if bytes < PAGE_BYTES {
        return Err(serde::de::Error::custom("memory limit below one page"));
    }
    Ok(bytes)
}

/// A positive count that crosses the wire as a `u32`.
macro_rules! nonzero_limit {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "u32", into = "u32")]
        pub struct $name(NonZeroU32);

        impl $name {
            pub fn get(self) -> u32 {
                self.0.get()
            }
        }

        impl TryFrom<u32> for $name {
            type Error = PlanError;

            fn try_from(n: u32) -> Result<Self, Self::Error> {
                NonZeroU32::new(n).map($name).ok_or(PlanError::ZeroLimit($what))
            }
        }

        impl From<$name> for u32 {
            fn from(n: $name) -> u32 {
                n.0.get()
            }
        }
    };
}

nonzero_limit!(
    /// CPU time per wall-clock second, in thousandths of a CPU (1.5 CPUs = 1500).
    MilliCpus,
    "cpus"
);
nonzero_limit!(
    /// The most tasks (processes and threads) the sandbox may hold.
    PidsLimit,
    "pids"
);

/// cgroup v2 `io.weight`: a share of the block devices' time relative to
/// other cgroups, 1 to 10000 (the kernel's default is 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct IoWeight(u16);

impl IoWeight {
    pub const MAX: u16 = 10_000;

    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for IoWeight {
    type Error = PlanError;

    fn try_from(n: u16) -> Result<Self, Self::Error> {
        if (1..=IoWeight::MAX).contains(&n) {
            Ok(IoWeight(n))
        } else {
            Err(PlanError::IoWeight(n))
        }
    }
}

impl From<IoWeight> for u16 {
    fn from(w: IoWeight) -> u16 {
        w.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub timeout: Option<Timeout>,
    pub memory: Option<MemoryLimit>,
    pub cpus: Option<MilliCpus>,
    pub pids: Option<PidsLimit>,
    pub io_weight: Option<IoWeight>,
}

impl Limits {
    /// Whether any cgroup limit is asked for.
    pub fn wants_cgroup(&self) -> bool {
        self.memory.is_some()
            || self.cpus.is_some()
            || self.pids.is_some()
            || self.io_weight.is_some()
    }
}

impl std::fmt::Display for ServiceMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServiceMode::Agent => "agent",
            ServiceMode::StrictAgent => "strict-agent",
            ServiceMode::Production => "production",
        })
    }
}

/// How strict the sandbox is (DESIGN.md, "Modes"). The rules that follow
/// from each mode are enforced by the front end before a plan exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceMode {
    /// Degraded security and chroot fallback allowed with explicit flags;
    /// unenforceable limits are a warning.
    Agent,
    /// Every mechanism must apply; limits must be enforced.
    StrictAgent,
    /// A declared service: strict-agent's rules, plus a memory limit, its
    /// own root, deny-all egress by default, Landlock ABI 3 at least, a
    /// mini-init as PID 1 and other users' processes hidden.
    Production,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub mode: ServiceMode,
    pub name: Option<SandboxName>,
    pub hostname: Hostname,
    pub namespaces: Namespaces,
    pub ids: IdMapping,
    pub root: RootFs,
    pub mounts: Vec<Mount>,
    pub process: Process,
    pub limits: Limits,
    pub security: Security,
    pub hardening: Hardening,
    pub network: NetworkMode,
    pub context: Option<Context>,
    pub workspace: Option<Workspace>,
    /// Placed at `SECRETS_DIR/<name>` in a dedicated tmpfs, mode 0400.
    pub secrets: Vec<Secret>,
}

/// What a host path's descriptor must be when it travels with a Launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    Directory,
    File,
    /// A volume: a directory or a single file.
    Any,
}

/// The caller's stdin, stdout and stderr, last in a Launch.
pub const STDIO_FDS: usize = 3;

/// Most descriptors one Launch may carry (the kernel's SCM_MAX_FD is 253).
pub const MAX_LAUNCH_FDS: usize = 250;

/// Where the agent inputs appear inside the sandbox.
pub const CONTEXT_DIR: &str = "/context";
pub const WORKSPACE_DIR: &str = "/workspace";
pub const SECRETS_DIR: &str = "/run/secrets";

impl Plan {
    /// The cross-field rules that single values cannot express. Every
    /// executor runs this on the plan it is about to apply, whoever built it.
    pub fn validate(&self) -> Result<(), PlanError> {
        validate_ids(&self.ids)?;
        let setgid = crate::security::Capability::from_name("CAP_SETGID");
        if !self.ids.groups.is_empty()
            && setgid.is_some_and(|c| self.security.capabilities.bounding().contains(c))
        {
            return Err(PlanError::GroupsWithSetgid);
        }
        validate_mounts(&self.mounts, &self.agent_dirs())?;
        validate_agent(self)?;
        let overlays = self
            .mounts
            .iter()
            .any(|m| matches!(m, Mount::Overlay { .. }));
        if overlays && self.root.overlay.is_none() {
            return Err(PlanError::OverlayWithoutStorage);
        }
        validate_counts(self)?;
        if let NetworkMode::Bridge(bridge) = &self.network {
            bridge.validate()?;
        }
        if let crate::security::Enforcement::MinimumAbi(abi) = self.security.landlock.enforcement {
            if abi == 0 || abi > crate::security::LANDLOCK_MAX_ABI {
                return Err(PlanError::LandlockAbi(abi));
            }
        }
        let handled = self.security.landlock.handled;
        for rule in &self.security.landlock.rules {
            if rule.access.intersect(handled) != rule.access {
                return Err(PlanError::LandlockUnhandled(rule.path.clone()));
            }
        }
        Ok(())
    }
}

fn validate_ids(ids: &IdMapping) -> Result<(), PlanError> {
    for (which, map, id) in [
        ("uid", &ids.uid_map, ids.uid),
        ("gid", &ids.gid_map, ids.gid),
    ] {
        if map.is_empty() || map.len() > MAX_ID_MAP_LINES {
            return Err(PlanError::TooMany {
                what: "id map lines",
                count: map.len(),
                max: MAX_ID_MAP_LINES,
            });
        }
        let overlaps = |key: fn(&IdMap) -> u32| {
            let mut ranges: Vec<(u64, u64)> = map
                .iter()
                .map(|m| (u64::from(key(m)), u64::from(key(m)) + u64::from(m.count)))
                .collect();
            ranges.sort_unstable();
            ranges.windows(2).any(|w| w[0].1 > w[1].0)
        };
        if overlaps(IdMap::inside) || overlaps(IdMap::outside) {
            return Err(PlanError::IdMapOverlap { which });
        }
        if !map.iter().any(|m| m.contains_inside(id)) {
            return Err(PlanError::IdUnmapped { which, id });
        }
    }
    if ids.groups.len() > MAX_GROUPS {
        return Err(PlanError::TooMany {
            what: "supplementary groups",
            count: ids.groups.len(),
            max: MAX_GROUPS,
        });
    }
    if let Some(&id) = ids
        .groups
        .iter()
        .find(|g| !ids.gid_map.iter().any(|m| m.contains_inside(**g)))
    {
        return Err(PlanError::IdUnmapped { which: "group", id });
    }
    Ok(())
}

fn validate_agent(plan: &Plan) -> Result<(), PlanError> {
    if let Some(Context {
        mode: ContextMode::Bind,
        verify: Some(_),
        ..
    }) = &plan.context
    {
        return Err(PlanError::VerifyBind);
    }
    let mut names = BTreeSet::new();
    for s in &plan.secrets {
        if !names.insert(&s.name) {
            return Err(PlanError::DuplicateSecret(s.name.to_string()));
        }
    }
    if plan.secrets.len() > MAX_SECRETS {
        return Err(PlanError::TooMany {
            what: "secrets",
            count: plan.secrets.len(),
            max: MAX_SECRETS,
        });
    }
    Ok(())
}

impl Plan {
    /// Every host path the plan names, in the order their descriptors
    /// travel with a Launch (followed by one descriptor per secret). The
    /// privileged helper never opens these paths itself.
    pub fn host_paths(&self) -> Vec<(&AbsPath, HostKind)> {
        let mut paths = Vec::new();
        if let RootSource::Directory(dir) = &self.root.source {
            paths.push((dir, HostKind::Directory));
        }
        if let Some(OverlayUpper::Directory(dir)) = &self.root.overlay {
            paths.push((dir, HostKind::Directory));
        }
        for m in &self.mounts {
            match m {
                Mount::Bind { source, .. } => paths.push((source, HostKind::Any)),
                Mount::CopyFile { source, .. } => paths.push((source, HostKind::File)),
                Mount::Overlay { lower, .. } => paths.push((lower, HostKind::Directory)),
                Mount::Tmpfs { .. } | Mount::Symlink { .. } | Mount::File { .. } => {}
            }
        }
        if let Some(ctx) = &self.context {
            paths.push((&ctx.source, HostKind::Directory));
        }
        if let Some(ws) = &self.workspace {
            paths.push((&ws.source, HostKind::Directory));
        }
        paths
    }

    /// Descriptors a Launch of this plan carries: host paths, then
    /// secrets, then the caller's stdin, stdout and stderr, then the
    /// violations file if it has one, then the caller's mount namespace
    /// (where the host-path descriptors live).
    pub fn launch_fd_count(&self) -> usize {
        self.host_paths().len()
            + self.secrets.len()
            + STDIO_FDS
            + usize::from(self.violations_file())
            + 1
    }

    /// Whether a descriptor for the violations file travels with the
    /// plan: seccomp denials and denied egress are written there.
    pub fn violations_file(&self) -> bool {
        self.security.seccomp_mode == crate::SeccompMode::Report
            || matches!(
                &self.network,
                NetworkMode::Bridge(crate::Bridge {
                    egress: Some(crate::EgressPolicy {
                        report: crate::EgressReport::File,
                        ..
                    }),
                    ..
                })
            )
    }

    /// Directories the agent inputs occupy: no plan mount may land there.
    fn agent_dirs(&self) -> Vec<&'static str> {
        let mut dirs = Vec::new();
        if self.context.is_some() {
            dirs.push(CONTEXT_DIR);
        }
        if self.workspace.is_some() {
            dirs.push(WORKSPACE_DIR);
        }
        if !self.secrets.is_empty() {
            dirs.push(SECRETS_DIR);
        }
        dirs
    }
}

fn validate_mounts(mounts: &[Mount], agent_dirs: &[&str]) -> Result<(), PlanError> {
    let reserved: Vec<Option<AbsPath>> = ["/proc", "/sys", "/dev"]
        .iter()
        .chain(agent_dirs)
        .map(|p| AbsPath::try_from(*p).ok())
        .collect();
    let mut seen = BTreeSet::new();
    let mut links: Vec<&AbsPath> = Vec::new();
    for m in mounts {
        let target = m.target();
        let is_reserved = reserved.iter().flatten().any(|r| target.starts_with(r));
        if target.is_root() || is_reserved {
            return Err(PlanError::ReservedTarget(target.clone()));
        }
        if !seen.insert(target) {
            return Err(PlanError::DuplicateTarget(target.clone()));
        }
        if let Some(link) = links.iter().find(|l| target.starts_with(l)) {
            return Err(PlanError::BeneathSymlink {
                target: target.clone(),
                link: (*link).clone(),
            });
        }
        if let Mount::Symlink { target, .. } = m {
            links.push(target);
        }
    }
    Ok(())
}

fn validate_counts(plan: &Plan) -> Result<(), PlanError> {
    let limits = [
        ("mounts", plan.mounts.len(), MAX_MOUNTS),
        ("environment variables", plan.process.env.len(), MAX_ENV),
        (
            "landlock rules",
            plan.security.landlock.rules.len(),
            MAX_LANDLOCK_RULES,
        ),
    ];
    for (what, count, max) in limits {
        if count > max {
            return Err(PlanError::TooMany { what, count, max });
        }
    }
    Ok(())
}
