//! `--require-kernel-lockdown`: the kernel's lockdown level, read from
//! securityfs, must be at least the one asked for; checked before anything
//! is created.

use std::process::Command;

use anyhow::{bail, Context, Result};

const LOCKDOWN: &str = "/sys/kernel/security/lockdown";

/// The kernel's lockdown levels, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lockdown {
    None,
    Integrity,
    Confidentiality,
}

impl std::fmt::Display for Lockdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lockdown::None => "none",
            Lockdown::Integrity => "integrity",
            Lockdown::Confidentiality => "confidentiality",
        })
    }
}

/// The current level in the file's text: every level the kernel knows,
/// the current one in brackets (`none [integrity] confidentiality`).
pub fn parse(text: &str) -> Option<Lockdown> {
    let current = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))?;
    match current {
        "none" => Some(Lockdown::None),
        "integrity" => Some(Lockdown::Integrity),
        "confidentiality" => Some(Lockdown::Confidentiality),
        _ => None,
    }
}

/// Refuses unless the kernel is locked down at least to `required`.
pub fn require(required: Lockdown) -> Result<()> {
    let text = read().context("--require-kernel-lockdown: reading the kernel's lockdown level")?;
    let Some(current) = parse(&text) else {
        bail!("--require-kernel-lockdown: {LOCKDOWN} says {text:?}, which names no current level");
    };
    if current < required {
        bail!("--require-kernel-lockdown {required}: the kernel's lockdown is {current}; boot with lockdown={required} (or drop the flag)");
    }
    Ok(())
}

/// The file's text. Where securityfs is not mounted, root mounts it,
/// read-only, in a mount namespace of a child's own (the host's stays as
/// it is); an unprivileged caller cannot, and is told so.
fn read() -> Result<String> {
    match std::fs::read_to_string(LOCKDOWN) {
        Ok(text) => return Ok(text),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).context(LOCKDOWN);
        }
        Err(_) => {}
    }
    if sandbox::caller_ids().0 != 0 {
        bail!("{LOCKDOWN} is missing: securityfs is not mounted (as root nucleus mounts it for the check) or the kernel has no lockdown support");
    }
    let out = Command::new("unshare")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -t securityfs -o ro,nosuid,nodev,noexec securityfs /sys/kernel/security && cat {LOCKDOWN}"
        ))
        .output()
        .context("running unshare to mount securityfs")?;
    if !out.status.success() {
        bail!(
            "mounting securityfs to read {LOCKDOWN}: {} (a kernel without lockdown support has no such file)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_format_parses() {
        assert_eq!(
            parse("[none] integrity confidentiality\n"),
            Some(Lockdown::None)
        );
        assert_eq!(
            parse("none [integrity] confidentiality\n"),
            Some(Lockdown::Integrity)
        );
        assert_eq!(
            parse("none integrity [confidentiality]\n"),
            Some(Lockdown::Confidentiality)
        );
        assert_eq!(parse("none integrity confidentiality\n"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("none [bogus] confidentiality"), None);
        assert!(Lockdown::None < Lockdown::Integrity);
        assert!(Lockdown::Integrity < Lockdown::Confidentiality);
    }
}
