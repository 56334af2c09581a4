//! Security settings in their compiled form: seccomp as BPF, Landlock as
//! access bitmasks. Policy languages (OCI JSON, TOML) are the front end's
//! business; a plan carries only what the kernel will be given.

use serde::{Deserialize, Serialize};

use crate::path::AbsPath;
use crate::plan::PlanError;

/// The kernel's limit on classic BPF program length (`BPF_MAXINSNS`).
pub const MAX_BPF_INSNS: usize = 4096;

/// One classic BPF instruction, as `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// A compiled seccomp filter: 1..=[`MAX_BPF_INSNS`] instructions. The kernel
/// verifies the program itself when it is loaded; a filter can only ever
/// restrict the process that installs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<SockFilter>", into = "Vec<SockFilter>")]
pub struct SeccompProgram(Vec<SockFilter>);

impl SeccompProgram {
    pub fn instructions(&self) -> &[SockFilter] {
        &self.0
    }
}

impl TryFrom<Vec<SockFilter>> for SeccompProgram {
    type Error = PlanError;

    fn try_from(insns: Vec<SockFilter>) -> Result<Self, Self::Error> {
        if insns.is_empty() || insns.len() > MAX_BPF_INSNS {
            return Err(PlanError::SeccompLength(insns.len()));
        }
        Ok(SeccompProgram(insns))
    }
}

impl From<SeccompProgram> for Vec<SockFilter> {
    fn from(p: SeccompProgram) -> Self {
        p.0
    }
}

/// Landlock filesystem access rights, with the kernel's bit values
/// (`LANDLOCK_ACCESS_FS_*`, ABI 1 to 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct FsAccess(u64);

impl FsAccess {
    pub const EXECUTE: FsAccess = FsAccess(1 << 0);
    pub const WRITE_FILE: FsAccess = FsAccess(1 << 1);
    pub const READ_FILE: FsAccess = FsAccess(1 << 2);
    pub const READ_DIR: FsAccess = FsAccess(1 << 3);
    pub const REMOVE_DIR: FsAccess = FsAccess(1 << 4);
    pub const REMOVE_FILE: FsAccess = FsAccess(1 << 5);
    pub const MAKE_CHAR: FsAccess = FsAccess(1 << 6);
    pub const MAKE_DIR: FsAccess = FsAccess(1 << 7);
    pub const MAKE_REG: FsAccess = FsAccess(1 << 8);
    pub const MAKE_SOCK: FsAccess = FsAccess(1 << 9);
    pub const MAKE_FIFO: FsAccess = FsAccess(1 << 10);
    pub const MAKE_BLOCK: FsAccess = FsAccess(1 << 11);
    pub const MAKE_SYM: FsAccess = FsAccess(1 << 12);
    /// ABI 2.
    pub const REFER: FsAccess = FsAccess(1 << 13);
    /// ABI 3.
    pub const TRUNCATE: FsAccess = FsAccess(1 << 14);
    /// ABI 5.
    pub const IOCTL_DEV: FsAccess = FsAccess(1 << 15);

    pub const EMPTY: FsAccess = FsAccess(0);
    /// Everything any known ABI can restrict.
    pub const ALL: FsAccess = FsAccess((1 << 16) - 1);
    pub const READ: FsAccess = FsAccess(Self::READ_FILE.0 | Self::READ_DIR.0);
    pub const READ_EXECUTE: FsAccess = FsAccess(Self::READ.0 | Self::EXECUTE.0);
    /// Everything that changes a tree: write, create, remove, rename, truncate.
    pub const WRITE: FsAccess = FsAccess(
        Self::WRITE_FILE.0
            | Self::REMOVE_DIR.0
            | Self::REMOVE_FILE.0
            | Self::MAKE_CHAR.0
            | Self::MAKE_DIR.0
            | Self::MAKE_REG.0
            | Self::MAKE_SOCK.0
            | Self::MAKE_FIFO.0
            | Self::MAKE_BLOCK.0
            | Self::MAKE_SYM.0
            | Self::REFER.0
            | Self::TRUNCATE.0,
    );

    pub fn bits(self) -> u64 {
        self.0
    }

    /// Keeps only the known rights of `bits`.
    pub fn from_bits_truncate(bits: u64) -> FsAccess {
        FsAccess(bits & Self::ALL.0)
    }

    pub const fn union_const(self, other: FsAccess) -> FsAccess {
        FsAccess(self.0 | other.0)
    }

    pub fn union(self, other: FsAccess) -> FsAccess {
        FsAccess(self.0 | other.0)
    }

    pub fn intersect(self, other: FsAccess) -> FsAccess {
        FsAccess(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl TryFrom<u64> for FsAccess {
    type Error = PlanError;

    fn try_from(bits: u64) -> Result<Self, Self::Error> {
        if bits & !Self::ALL.0 != 0 {
            return Err(PlanError::LandlockAccess(bits));
        }
        Ok(FsAccess(bits))
    }
}

impl From<FsAccess> for u64 {
    fn from(a: FsAccess) -> u64 {
        a.0
    }
}

/// The newest Landlock ABI this protocol knows (Linux 6.15).
pub const LANDLOCK_MAX_ABI: u32 = 7;

/// Access granted beneath one path inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandlockRule {
    pub path: AbsPath,
    pub access: FsAccess,
}

/// What happens when the kernel cannot enforce the whole policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Enforcement {
    /// Apply what the kernel's ABI supports; a kernel without Landlock is an
    /// error unless security degradation was explicitly allowed.
    BestAbi,
    /// Refuse to start below this ABI version (1 to [`LANDLOCK_MAX_ABI`]);
    /// with degradation allowed, warn and enforce the best ABI there is.
    MinimumAbi(u32),
}

/// A Landlock ruleset: everything in `handled` is denied except where a rule
/// grants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandlockPolicy {
    pub handled: FsAccess,
    pub rules: Vec<LandlockRule>,
    pub enforcement: Enforcement,
}

/// The highest capability number this protocol knows
/// (`CAP_CHECKPOINT_RESTORE`, Linux 5.9).
pub const CAP_LAST: u32 = 40;

/// The kernel's capability names, indexed by number (`capability.h`).
const CAP_NAMES: [&str; CAP_LAST as usize + 1] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// One capability, by number; only the ones with a name exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Capability(u32);

impl Capability {
    pub const NET_BIND_SERVICE: Capability = Capability(10);
    pub const SETPCAP: Capability = Capability(8);

    /// `CAP_NET_BIND_SERVICE` (the `CAP_` prefix is required, as in
    /// `capabilities(7)`).
    pub fn from_name(name: &str) -> Option<Capability> {
        CAP_NAMES
            .iter()
            .position(|n| *n == name)
            .and_then(|i| u32::try_from(i).ok())
            .map(Capability)
    }

    pub fn from_number(number: u32) -> Option<Capability> {
        (number <= CAP_LAST).then_some(Capability(number))
    }

    pub fn name(self) -> &'static str {
        CAP_NAMES.get(self.0 as usize).copied().unwrap_or("CAP_?")
    }

    pub fn number(self) -> u32 {
        self.0
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of capabilities, as the kernel's 64-bit mask; no bit above
/// [`CAP_LAST`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct CapSet(u64);

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);

    pub fn bits(self) -> u64 {
        self.0
    }

    pub fn with(self, cap: Capability) -> CapSet {
        CapSet(self.0 | 1 << cap.0)
    }

    pub fn contains(self, cap: Capability) -> bool {
        self.0 & (1 << cap.0) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn is_subset(self, of: CapSet) -> bool {
        self.0 & !of.0 == 0
    }

    /// The members, lowest number first.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        (0..=CAP_LAST)
            .map(Capability)
            .filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Capability> for CapSet {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> CapSet {
        iter.into_iter().fold(CapSet::EMPTY, CapSet::with)
    }
}

impl TryFrom<u64> for CapSet {
    type Error = PlanError;

    fn try_from(bits: u64) -> Result<Self, Self::Error> {
        if bits >> (CAP_LAST + 1) != 0 {
            return Err(PlanError::CapabilityBits(bits));
        }
        Ok(CapSet(bits))
    }
}

impl From<CapSet> for u64 {
    fn from(s: CapSet) -> u64 {
        s.0
    }
}

/// The capabilities the workload keeps: `bounding` limits what it can ever
/// hold, `ambient` is what it holds (permitted and effective) after exec.
/// Ambient ⊆ bounding, by construction. Every other capability is dropped
/// from every set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "(CapSet, CapSet)", into = "(CapSet, CapSet)")]
pub struct Capabilities {
    bounding: CapSet,
    ambient: CapSet,
}

impl Capabilities {
    /// Nothing kept, in any set: the default.
    pub const NONE: Capabilities = Capabilities {
        bounding: CapSet::EMPTY,
        ambient: CapSet::EMPTY,
    };

    pub fn new(bounding: CapSet, ambient: CapSet) -> Result<Capabilities, PlanError> {
        if !ambient.is_subset(bounding) {
            let outside = CapSet(ambient.0 & !bounding.0);
            return Err(PlanError::AmbientNotBounding(
                outside
                    .iter()
                    .map(Capability::name)
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        Ok(Capabilities { bounding, ambient })
    }

    pub fn bounding(&self) -> CapSet {
        self.bounding
    }

    pub fn ambient(&self) -> CapSet {
        self.ambient
    }
}

impl TryFrom<(CapSet, CapSet)> for Capabilities {
    type Error = PlanError;

    fn try_from((bounding, ambient): (CapSet, CapSet)) -> Result<Self, Self::Error> {
        Capabilities::new(bounding, ambient)
    }
}

impl From<Capabilities> for (CapSet, CapSet) {
    fn from(c: Capabilities) -> Self {
        (c.bounding, c.ambient)
    }
}

/// Every restriction the workload runs under. `no_new_privs` is always
/// set: not a field, so no plan can turn it off. Capabilities are all
/// dropped except what `capabilities` keeps (nothing, by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    pub seccomp: SeccompProgram,
    pub landlock: LandlockPolicy,
    pub capabilities: Capabilities,
    /// Agent mode's `--allow-degraded-security`: a mechanism the kernel lacks
    /// becomes a warning instead of an error.
    pub allow_degraded: bool,
    /// Agent mode's `--allow-chroot-fallback`: chroot when pivot_root fails.
    pub allow_chroot_fallback: bool,
    /// `--seccomp-log-denied`: the kernel logs every system call the filter
    /// does not allow (SECCOMP_FILTER_FLAG_LOG; the audit log or dmesg).
    pub log_denied: bool,
    pub seccomp_mode: SeccompMode,
}

/// What the workload's seccomp filter does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompMode {
    /// `seccomp` decides each system call.
    Enforce,
    /// Every system call is allowed and recorded (by the executor, through
    /// seccomp user notifications) for `nucleus seccomp generate`; agent
    /// mode only, never through the helper.
    Trace,
    /// `seccomp` decides each system call, and each one it denies with an
    /// errno is reported (`--violations`): the denials go to a
    /// user-notification listener the executor holds, which answers with
    /// the program's own errno (never lets a call through) and writes a
    /// line to the violations file. Agent modes only.
    Report,
}
