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
    /// Refuse to start below this ABI version.
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

/// Every restriction the workload runs under. All capabilities are always
/// dropped and `no_new_privs` is always set: neither is a field, so no plan
/// can turn them off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    pub seccomp: SeccompProgram,
    pub landlock: LandlockPolicy,
    /// Agent mode's `--allow-degraded-security`: a mechanism the kernel lacks
    /// becomes a warning instead of an error.
    pub allow_degraded: bool,
    /// Agent mode's `--allow-chroot-fallback`: chroot when pivot_root fails.
    pub allow_chroot_fallback: bool,
}
