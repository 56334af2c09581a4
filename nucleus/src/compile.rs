//! RunSpec → Plan: resolve everything on the host, as the caller, into the
//! exact values the executor applies. Host paths are canonicalized here;
//! the plan never contains a relative path or a symlink to follow later.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use protocol::{
    AbsPath, Arg, Argv, EnvName, Hostname, IdMap, IdMapping, Limits, Mount, Namespaces,
    OverlayUpper, Plan, Process, RootFs, RootSource, SandboxName, Security, Timeout,
    MAX_COPY_BYTES,
};

use crate::cli::{RunSpec, UserNs};
use crate::{agent, identity, limits, modes, network, policy, policy_landlock, seccomp_trace};
use protocol::subids;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Host directories that make up the default root (when they exist): the
/// programs and libraries, never the user's data.
const HOST_DIRS: [&str; 8] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/nix",
];

/// What programs need from `/etc` at run time: users and groups for `id`,
/// name resolution, the dynamic linker cache, TLS roots, alternatives, time
/// zone. Not shadow, not sudoers, not ssh keys. (Each entry is a mount, and
/// mounts are most of the start-up cost: keep the list short.)
const HOST_ETC: [&str; 13] = [
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/ld.so.cache",
    "/etc/ssl",
    "/etc/alternatives",
    "/etc/os-release",
    "/etc/services",
    "/etc/protocols",
    "/etc/terminfo",
];

/// A file the caller asked nucleus to write (a report, a record): opened
/// here, as the caller, created or truncated, mode 0600; its descriptor
/// travels to the executor.
pub fn output_file(flag: &str, path: &Path) -> Result<std::os::fd::OwnedFd> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{flag} {}", path.display()))?;
    Ok(file.into())
}

/// Facts about the caller the plan depends on, gathered once by `main`.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// A non-root caller whose privileged features go through the helper
    /// (installed, and not --rootless).
    pub via_helper: bool,
}

/// The plan, and the descriptors the executor hands the sandbox with it.
pub fn compile(spec: &RunSpec, caller: Caller) -> Result<(Plan, sandbox::Inputs)> {
    // Policy files first: a pinned file that changed stops everything.
    let policies = policy::load(&spec.policy)?;
    let name = spec
        .name
        .as_deref()
        .map(SandboxName::try_from)
        .transpose()
        .map_err(|e| anyhow!("--name: {e}"))?;
    let hostname = match (&spec.hostname, &name) {
        (Some(h), _) => Hostname::try_from(h.as_str()).map_err(|e| anyhow!("--hostname: {e}"))?,
        (None, Some(n)) => Hostname::try_from(n.as_str()).unwrap_or(default_hostname()?),
        (None, None) => default_hostname()?,
    };
    let (root, mut mounts) = root_and_mounts(spec)?;
    let network = network::compile(spec, caller, &mut mounts)?;
    let violations = violations_file(spec)?;
    let seccomp_trace = seccomp_trace::trace_file(spec)?;
    let volumes = volumes(spec)?;
    mounts.extend(volumes.iter().cloned());
    let agent = agent::compile(&spec.agent)?;
    let cwd = match &spec.workdir {
        Some(w) => AbsPath::try_from(w.as_str())
            .map_err(|e| anyhow!("--workdir {w}: {e}; use an absolute path"))?,
        None => AbsPath::root(),
    };
    let plan = Plan {
        mode: spec.mode,
        name,
        hostname,
        namespaces: Namespaces {
            time: spec.time_namespace,
        },
        ids: {
            let mut ids = ids(spec.userns, caller)?;
            identity::apply(spec, caller, &mut ids)?;
            ids
        },
        root: root.clone(),
        mounts,
        process: Process {
            argv: argv(&spec.command)?,
            env: environment(spec, &root)?,
            cwd,
            tty: spec.tty,
            init: spec.init,
        },
        limits: Limits {
            timeout: spec
                .timeout_secs
                .map(Timeout::try_from)
                .transpose()
                .map_err(|e| anyhow!("--timeout: {e}"))?,
            memory: spec
                .memory
                .as_deref()
                .map(limits::parse_memory)
                .transpose()?,
            cpus: spec.cpus.as_deref().map(limits::parse_cpus).transpose()?,
            pids: spec.pids.as_deref().map(limits::parse_pids).transpose()?,
            io_weight: spec
                .io_weight
                .as_deref()
                .map(limits::parse_io_weight)
                .transpose()?,
        },
        security: Security {
            seccomp: policies.seccomp,
            landlock: policy_landlock::complete(
                policies.landlock,
                &root,
                &volumes,
                &agent::writable_dirs(&agent),
            ),
            capabilities: policies.capabilities,
            allow_degraded: spec.allow_degraded_security,
            allow_chroot_fallback: spec.allow_chroot_fallback,
            log_denied: spec.seccomp_log_denied,
            seccomp_mode: if spec.seccomp_mode_trace {
                protocol::SeccompMode::Trace
            } else if spec.violations.is_some() {
                protocol::SeccompMode::Report
            } else {
                protocol::SeccompMode::Enforce
            },
        },
        hardening: protocol::Hardening::default(),
        network,
        context: agent.context,
        workspace: agent.workspace,
        secrets: agent.secrets,
    };
    let mode = plan.mode;
    let plan = modes::enforce(plan)
        .map_err(|found| anyhow!("{mode} mode forbids: {}", found.join("; ")))?;
    match modes::check_trust(spec.trust, &plan) {
        Ok(None) => {}
        Ok(Some(warning)) => eprintln!("nucleus: warning: {warning}"),
        Err(found) => bail!("{}", found.join("; ")),
    }
    plan.validate().context("the plan is invalid")?;
    let inputs = sandbox::Inputs {
        secrets: agent.secret_fds,
        host_trees: Vec::new(),
        stdio: Vec::new(),
        sync_back: None,
        violations,
        seccomp_trace,
    };
    Ok((plan, inputs))
}

/// The violations file, opened as the caller: `--violations` (seccomp
/// denials and denied egress) or `--egress-report` (egress only).
fn violations_file(spec: &RunSpec) -> Result<Option<std::os::fd::OwnedFd>> {
    match (&spec.violations, &spec.egress_report) {
        (Some(_), Some(_)) => {
            bail!("--egress-report: --violations FILE takes the egress report too; give one of them")
        }
        (Some(_), None) if spec.seccomp_mode_trace => bail!(
            "--violations: reports what the seccomp profile denies, and --seccomp-mode trace denies nothing; drop one"
        ),
        (Some(path), None) => output_file("--violations", path).map(Some),
        (None, Some(path)) => output_file("--egress-report", path).map(Some),
        (None, None) => Ok(None),
    }
}

fn default_hostname() -> Result<Hostname> {
    Hostname::try_from("nucleus").map_err(|e| anyhow!("{e}"))
}

pub fn abs(p: &str) -> Result<AbsPath> {
    AbsPath::try_from(p).map_err(|e| anyhow!("{e}"))
}

fn ids(mode: UserNs, caller: Caller) -> Result<IdMapping> {
    let (uid, gid) = match mode {
        UserNs::Auto | UserNs::SubIds => (0, 0),
        UserNs::KeepId => (caller.uid, caller.gid),
    };
    let mut ids = IdMapping {
        uid_map: vec![IdMap::new(uid, caller.uid, 1)?],
        gid_map: vec![IdMap::new(gid, caller.gid, 1)?],
        uid,
        gid,
        groups: Vec::new(),
    };
    if mode == UserNs::SubIds {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .with_context(|| format!("--userns subids: reading {path}"))
        };
        let passwd = read("/etc/passwd")?;
        let name = subids::user_name(&passwd, caller.uid).unwrap_or_default();
        for (file, map) in [
            ("/etc/subuid", &mut ids.uid_map),
            ("/etc/subgid", &mut ids.gid_map),
        ] {
            let Some(&(start, count)) = subids::ranges(&read(file)?, name, caller.uid).first()
            else {
                bail!(
                    "--userns subids: {file} has no range for {} (uid {}); an administrator can add one with usermod --add-subuids/--add-subgids",
                    if name.is_empty() { "you" } else { name },
                    caller.uid
                );
            };
            if caller.uid == 0 {
                // Root's sandbox is remapped whole: its 0 is the range's
                // first id, never the host's root.
                *map = vec![IdMap::new(0, start, count)?];
            } else {
                // Inside ids 1.. follow the caller's own 0; the range ends where u32 does.
                map.push(IdMap::new(1, start, count.min(u32::MAX - 1))?);
            }
        }
    }
    Ok(ids)
}

/// The root and the mounts that furnish it.
/// A host directory in the default root: read-only, or the lower layer of
/// an overlay when the root is one.
fn host_dir(source: AbsPath, target: AbsPath, overlay: bool) -> Mount {
    if overlay {
        Mount::Overlay {
            lower: source,
            target,
        }
    } else {
        Mount::Bind {
            source,
            target,
            read_only: true,
        }
    }
}

/// `--overlay` / `--overlay-dir`: where the root's writes go.
fn overlay_upper(spec: &RunSpec) -> Result<Option<OverlayUpper>> {
    match (&spec.overlay_dir, spec.overlay) {
        (Some(dir), _) => {
            let flag = || format!("--overlay-dir {}", dir.display());
            let canonical = canonical_dir(dir).with_context(flag)?;
            let magic =
                sandbox::filesystem_magic(Path::new(canonical.as_str())).with_context(flag)?;
            if let Some(kind) = unsuitable_upper(magic) {
                bail!("{}: it is on {kind}, which cannot hold an overlay's upper layer; use a directory on a local filesystem (ext4, xfs, btrfs, tmpfs)", flag());
            }
            Ok(Some(OverlayUpper::Directory(canonical)))
        }
        (None, true) => Ok(Some(OverlayUpper::Tmpfs)),
        (None, false) => Ok(None),
    }
}

/// Filesystems overlayfs refuses (or mishandles) as an upper layer.
fn unsuitable_upper(magic: i64) -> Option<&'static str> {
    match magic {
        0x794c_7630 => Some("overlayfs"),
        0x6573_5546 => Some("a FUSE filesystem"),
        0x6969 => Some("NFS"),
        0xff53_4d42 | 0xfe53_4d42 => Some("SMB"),
        0x0102_1997 => Some("9p"),
        0x9fa0 => Some("procfs"),
        0x6265_6572 => Some("sysfs"),
        _ => None,
    }
}

fn root_and_mounts(spec: &RunSpec) -> Result<(RootFs, Vec<Mount>)> {
    let overlay = overlay_upper(spec)?;
    if let Some(dir) = &spec.rootfs {
        let canonical =
            canonical_dir(dir).with_context(|| format!("--rootfs {}", dir.display()))?;
        let root = RootFs {
            source: RootSource::Directory(canonical),
            read_only: spec.read_only && overlay.is_none(),
            overlay,
        };
        return Ok((root, Vec::new()));
    }
    let mut mounts = Vec::new();
    for dir in HOST_DIRS {
        let Ok(meta) = fs::symlink_metadata(dir) else {
            continue;
        };
        let target = abs(dir)?;
        if meta.file_type().is_symlink() {
            // Merged /usr: /bin -> usr/bin. Recreate the link, don't follow it.
            let to = fs::read_link(dir).with_context(|| format!("reading host symlink {dir}"))?;
            let link_to = to
                .to_str()
                .and_then(|s| Arg::try_from(s).ok())
                .ok_or_else(|| anyhow!("host symlink {dir} has an unusable target"))?;
            mounts.push(Mount::Symlink { target, link_to });
        } else if meta.is_dir() {
            mounts.push(host_dir(target.clone(), target, overlay.is_some()));
        }
    }
    for entry in HOST_ETC {
        // Follow symlinks on the host (resolv.conf often points into /run):
        // directories are mounted, small files copied (a mount costs more).
        // Only links are resolved: this runs before every sandbox.
        let Ok(meta) = fs::symlink_metadata(entry) else {
            continue;
        };
        let (real, meta) = if meta.file_type().is_symlink() {
            let Ok(real) = fs::canonicalize(entry) else {
                continue;
            };
            let Ok(meta) = fs::metadata(&real) else {
                continue;
            };
            (real, meta)
        } else {
            (entry.into(), meta)
        };
        let Some(source) = real.to_str().and_then(|s| AbsPath::try_from(s).ok()) else {
            continue;
        };
        let target = abs(entry)?;
        mounts.push(if meta.is_file() && meta.len() <= MAX_COPY_BYTES {
            Mount::CopyFile { source, target }
        } else {
            host_dir(source, target, overlay.is_some())
        });
    }
    // The tmpfs root holds nothing but mount points: read-only, unless it
    // is an overlay root, which takes writes anywhere.
    let root = RootFs {
        source: RootSource::Tmpfs,
        read_only: overlay.is_none(),
        overlay,
    };
    Ok((root, mounts))
}

/// A sandbox gets only what its caller can open: refuse early, with the
/// flag named, rather than show an unreadable mount inside.
fn ensure_readable(path: &Path) -> Result<()> {
    // Only directories and regular files are opened: opening a FIFO would
    // block, and device files have no business here.
    let meta = fs::metadata(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if !meta.is_dir() && !meta.is_file() {
        bail!(
            "{} is neither a directory nor a regular file",
            path.display()
        );
    }
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map(drop)
        .map_err(|e| {
            anyhow!(
                "{}: {e}; you can only give the sandbox what you can read yourself",
                path.display()
            )
        })
}

pub(crate) fn canonical_dir(dir: &Path) -> Result<AbsPath> {
    let real = fs::canonicalize(dir).map_err(|e| anyhow!("{e}; give an existing directory"))?;
    if !real.is_dir() {
        bail!("{} is not a directory", real.display());
    }
    ensure_readable(&real)?;
    let s = real
        .to_str()
        .ok_or_else(|| anyhow!("path is not valid UTF-8"))?;
    AbsPath::try_from(s).map_err(|e| anyhow!("{e}"))
}

fn volumes(spec: &RunSpec) -> Result<Vec<Mount>> {
    spec.volumes
        .iter()
        .map(|v| {
            let flag = || format!("--volume {}:{}", v.host.display(), v.target);
            let real = fs::canonicalize(&v.host)
                .map_err(|e| {
                    anyhow!(
                        "source {}: {e}; create it first or fix the path",
                        v.host.display()
                    )
                })
                .with_context(flag)?;
            ensure_readable(&real).with_context(flag)?;
            let source = real
                .to_str()
                .and_then(|s| AbsPath::try_from(s).ok())
                .ok_or_else(|| anyhow!("source path is not valid UTF-8"))
                .with_context(flag)?;
            let target = AbsPath::try_from(v.target.as_str())
                .map_err(|e| anyhow!("target: {e}; use an absolute path like /data"))
                .with_context(flag)?;
            Ok(Mount::Bind {
                source,
                target,
                read_only: v.read_only,
            })
        })
        .collect()
}

fn argv(command: &[String]) -> Result<Argv> {
    let args = command
        .iter()
        .map(|a| Arg::try_from(a.as_str()).map_err(|e| anyhow!("COMMAND argument: {e}")))
        .collect::<Result<Vec<_>>>()?;
    Argv::try_from(args).map_err(|e| anyhow!("{e}"))
}

/// A clean environment: nothing leaks from the caller unless asked for.
fn environment(spec: &RunSpec, root: &RootFs) -> Result<BTreeMap<EnvName, Arg>> {
    let mut vars: Vec<(String, String)> = vec![("PATH".into(), DEFAULT_PATH.into())];
    let home = match &root.source {
        RootSource::Directory(dir) if Path::new(dir.as_str()).join("root").is_dir() => "/root",
        _ => "/tmp",
    };
    vars.push(("HOME".into(), home.into()));
    if spec.tty {
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
        vars.push(("TERM".into(), term));
    }
    for file in &spec.env_files {
        let text =
            fs::read_to_string(file).map_err(|e| anyhow!("--env-file {}: {e}", file.display()))?;
        vars.extend(
            parse_env_file(&text).with_context(|| format!("--env-file {}", file.display()))?,
        );
    }
    if let Some((k, _)) = spec.env.iter().find(|(k, _)| agent::looks_secret(k)) {
        eprintln!("nucleus: hint: {k} looks like a secret; --secret FILE:{} keeps it out of the environment and /proc", k.to_ascii_lowercase());
    }
    for (k, v) in &spec.env {
        let value = match v {
            Some(v) => v.clone(),
            None => std::env::var(k).map_err(|_| {
                anyhow!("--env {k}: not set in the calling environment; use --env {k}=VALUE")
            })?,
        };
        vars.push((k.clone(), value));
    }
    let mut env = BTreeMap::new();
    for (k, v) in vars {
        let name = EnvName::try_from(k.as_str()).map_err(|e| anyhow!("--env {k}: {e}"))?;
        let value = Arg::try_from(v).map_err(|e| anyhow!("--env {k}: {e}"))?;
        env.insert(name, value);
    }
    Ok(env)
}

/// `KEY=VAL` per line; blank lines and `#` comments are skipped.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>> {
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| anyhow!("line {}: expected KEY=VALUE, got {line:?}", n + 1))?;
        vars.push((k.trim().to_owned(), v.to_owned()));
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_lines() {
        let vars = parse_env_file("# c\n\nA=1\nB = x=y\n").unwrap();
        assert_eq!(
            vars,
            [("A".into(), "1".into()), ("B".into(), " x=y".into())]
        );
        let err = parse_env_file("A=1\nNOEQUALS\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn keep_id_maps_the_caller_to_itself() {
        let caller = Caller {
            uid: 1000,
            gid: 100,
            via_helper: false,
        };
        let ids = ids(UserNs::KeepId, caller).unwrap();
        assert_eq!((ids.uid, ids.gid), (1000, 100));
        assert_eq!(ids.uid_map[0].outside(), 1000);
        let ids = super::ids(UserNs::Auto, caller).unwrap();
        assert_eq!(
            (ids.uid, ids.uid_map[0].inside(), ids.uid_map[0].outside()),
            (0, 0, 1000)
        );
    }
}
