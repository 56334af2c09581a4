//! Landlock: confine the workload's filesystem access to the plan's rules,
//! at the best ABI this kernel offers.

use std::os::fd::AsFd;

use protocol::{Enforcement, FsAccess, LandlockPolicy};

use crate::error::{Context, Error};
use crate::{sources, sys};

/// What was enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Enforced {
        abi: u32,
    },
    /// The kernel has no Landlock and the plan allowed running without it.
    Skipped,
}

/// Rights that apply to files (not only directories): a rule on a file
/// may only grant these.
const FILE_RIGHTS: FsAccess = FsAccess::EXECUTE
    .union_const(FsAccess::WRITE_FILE)
    .union_const(FsAccess::READ_FILE)
    .union_const(FsAccess::TRUNCATE)
    .union_const(FsAccess::IOCTL_DEV);

/// Every right the kernel can restrict at `abi`.
pub fn supported(abi: u32) -> FsAccess {
    let mut bits = (1u64 << 13) - 1;
    if abi >= 2 {
        bits |= FsAccess::REFER.bits();
    }
    if abi >= 3 {
        bits |= FsAccess::TRUNCATE.bits();
    }
    if abi >= 5 {
        bits |= FsAccess::IOCTL_DEV.bits();
    }
    FsAccess::ALL.intersect(FsAccess::from_bits_truncate(bits))
}

/// Restricts the calling thread (and everything it executes). Must run
/// after no_new_privs is set and after pivot_root, since rule paths are
/// resolved in the new root.
pub fn restrict_self(policy: &LandlockPolicy, allow_degraded: bool) -> Result<Status, Error> {
    let abi = match sys::landlock_abi() {
        Ok(abi) => abi,
        Err(e) if allow_degraded => {
            eprintln!("nucleus: warning: Landlock is unavailable ({e}); running without filesystem confinement as allowed by --allow-degraded-security");
            return Ok(Status::Skipped);
        }
        Err(e) => {
            return Err(Error::Unsupported {
                mechanism: "Landlock",
                detail: e.to_string(),
            })
        }
    };
    if let Enforcement::MinimumAbi(min) = policy.enforcement {
        if abi < min {
            let detail = format!("kernel offers ABI {abi}, the policy requires {min}");
            if !allow_degraded {
                return Err(Error::Unsupported {
                    mechanism: "the required Landlock ABI",
                    detail,
                });
            }
            eprintln!("nucleus: warning: Landlock: {detail}; enforcing ABI {abi} as allowed by --allow-degraded-security");
        }
    }
    let handled = policy.handled.intersect(supported(abi));
    let ruleset = sys::landlock_create_ruleset(handled.bits())
        .step(|| "creating the Landlock ruleset".into())?;
    for rule in &policy.rules {
        let fd = sources::open_path(rule.path.as_str())
            .step(|| format!("opening Landlock rule path {}", rule.path))?;
        let is_dir = sys::fstat(fd.as_fd())
            .step(|| format!("stat {}", rule.path))?
            .st_mode
            & libc::S_IFMT
            == libc::S_IFDIR;
        let mut access = rule.access.intersect(handled);
        if !is_dir {
            access = access.intersect(FILE_RIGHTS);
        }
        if access.is_empty() {
            continue;
        }
        sys::landlock_add_path_rule(ruleset.as_fd(), fd.as_fd(), access.bits())
            .step(|| format!("adding the Landlock rule for {}", rule.path))?;
    }
    sys::landlock_restrict_self(ruleset.as_fd())
        .step(|| "enforcing the Landlock ruleset".into())?;
    Ok(Status::Enforced { abi })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_rights_grow_with_the_abi() {
        assert_eq!(supported(1).bits(), (1 << 13) - 1);
        assert!(supported(2).bits() & FsAccess::REFER.bits() != 0);
        assert!(supported(2).bits() & FsAccess::TRUNCATE.bits() == 0);
        assert!(supported(3).bits() & FsAccess::TRUNCATE.bits() != 0);
        assert_eq!(supported(7), FsAccess::ALL);
    }
}
