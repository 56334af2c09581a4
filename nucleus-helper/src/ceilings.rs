//! Per-user ceilings, set by the administrator in `/etc/nucleus/helper.conf`:
//!
//! ```text
//! # For every user's sandboxes:
//! memory_max_bytes = 2147483648
//! cpus_max_milli = 2000
//! pids_max = 512
//! # For one user (by uid), overriding the lines above:
//! user 1000 memory_max_bytes = 8589934592
//! ```
//!
//! A plan within the ceilings runs; a limit it leaves out becomes the
//! ceiling; a plan above them needs polkit's `org.nucleus.limits.exceed`.
//! The format is this small on purpose: the helper parses nothing bigger.

use protocol::{Limits, MemoryLimit, MilliCpus, PidsLimit};

pub const PATH: &str = "/etc/nucleus/helper.conf";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ceilings {
    pub memory_bytes: Option<u64>,
    pub milli_cpus: Option<u32>,
    pub pids: Option<u32>,
}

/// The ceilings that apply to `uid` in `text`; an error names the line.
pub fn parse(text: &str, uid: u32) -> Result<Ceilings, String> {
    let mut all = Ceilings::default();
    let mut mine = Ceilings::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = || {
            format!(
                "{PATH}:{}: expected `KEY = NUMBER` or `user UID KEY = NUMBER`, got {raw:?}",
                n + 1
            )
        };
        let (target, rest) = match line.strip_prefix("user ") {
            Some(rest) => {
                let (id, rest) = rest.trim().split_once(' ').ok_or_else(bad)?;
                let id: u32 = id.parse().map_err(|_| bad())?;
                if id != uid {
                    continue;
                }
                (&mut mine, rest)
            }
            None => (&mut all, line),
        };
        let (key, value) = rest.split_once('=').ok_or_else(bad)?;
        let value: u64 = value.trim().parse().map_err(|_| bad())?;
        let small = || u32::try_from(value).map_err(|_| bad());
        match key.trim() {
            "memory_max_bytes" => target.memory_bytes = Some(value),
            "cpus_max_milli" => target.milli_cpus = Some(small()?),
            "pids_max" => target.pids = Some(small()?),
            _ => return Err(bad()),
        }
    }
    Ok(Ceilings {
        memory_bytes: mine.memory_bytes.or(all.memory_bytes),
        milli_cpus: mine.milli_cpus.or(all.milli_cpus),
        pids: mine.pids.or(all.pids),
    })
}

/// `limits` with every missing limit set to its ceiling, and whether any
/// asked-for limit is above its ceiling.
pub fn apply(limits: &Limits, ceilings: &Ceilings) -> (Limits, bool) {
    let mut out = limits.clone();
    let mut exceeds = false;
    if let Some(max) = ceilings.memory_bytes {
        match limits.memory {
            Some(MemoryLimit::Bytes(b)) => exceeds |= b > max,
            Some(MemoryLimit::Max) => exceeds = true,
            None => out.memory = Some(MemoryLimit::Bytes(max)),
        }
    }
    if let Some(max) = ceilings.milli_cpus {
        match limits.cpus {
            Some(c) => exceeds |= c.get() > max,
            None => out.cpus = MilliCpus::try_from(max).ok(),
        }
    }
    if let Some(max) = ceilings.pids {
        match limits.pids {
            Some(p) => exceeds |= p.get() > max,
            None => out.pids = PidsLimit::try_from(max).ok(),
        }
    }
    (out, exceeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "memory_max_bytes = 1000000\npids_max = 64 # per sandbox\nuser 1000 memory_max_bytes = 5000000\n";

    #[test]
    fn user_lines_override_the_defaults() {
        assert_eq!(
            parse(CONF, 1000).unwrap(),
            Ceilings {
                memory_bytes: Some(5_000_000),
                milli_cpus: None,
                pids: Some(64)
            }
        );
        assert_eq!(parse(CONF, 1001).unwrap().memory_bytes, Some(1_000_000));
        assert_eq!(parse("", 0).unwrap(), Ceilings::default());
    }

    #[test]
    fn bad_lines_are_named() {
        for bad in [
            "memory_max = 1G",
            "pids_max 5",
            "user x pids_max = 1",
            "bogus = 1",
            "pids_max = 99999999999",
        ] {
            let err = parse(bad, 1000).unwrap_err();
            assert!(err.contains(":1:"), "{bad}: {err}");
        }
    }

    #[test]
    fn missing_limits_take_the_ceiling_and_excess_is_flagged() {
        let ceilings = Ceilings {
            memory_bytes: Some(1 << 20),
            milli_cpus: Some(1000),
            pids: Some(64),
        };
        let none = Limits {
            timeout: None,
            memory: None,
            cpus: None,
            pids: None,
            io_weight: None,
        };
        let (applied, exceeds) = apply(&none, &ceilings);
        assert!(!exceeds);
        assert_eq!(applied.memory, Some(MemoryLimit::Bytes(1 << 20)));
        assert_eq!(applied.pids.map(|p| p.get()), Some(64));
        let mut big = none.clone();
        big.memory = Some(MemoryLimit::Bytes(2 << 20));
        assert!(apply(&big, &ceilings).1);
        big.memory = Some(MemoryLimit::Max);
        assert!(apply(&big, &ceilings).1);
    }
}
