//! Command-line parsing into a [`RunSpec`]: what the user asked for, in
//! their words, checked only for form. `compile` turns it into a Plan.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use lexopt::prelude::*;
use protocol::{SandboxId, ServiceMode, StopSignal};

use crate::lockdown::Lockdown;
use crate::modes::Trust;

pub const USAGE: &str = "\
usage: nucleus run [OPTIONS] [--] COMMAND [ARGS...]
       nucleus ps               your sandboxes running through the helper
       nucleus stop ID          SIGTERM, then SIGKILL after 10 s
       nucleus kill ID          SIGKILL
       nucleus seccomp generate TRACE... -o PROFILE.json
                                a minimal OCI profile allowing exactly the
                                system calls of the traces

Runs COMMAND in a new sandbox: user, pid, mount, uts, ipc, net (loopback
only) and cgroup namespaces, a fresh root, no capabilities, no_new_privs,
seccomp and Landlock.

options:
  --rootless                 run in-process in a user namespace, never
                             through the privileged helper
  --userns MODE              auto: uid 0 inside maps to you (default);
                             keep-id: keep your uid and gid inside;
                             subids: uid 0 is you, 1 and up your
                             /etc/subuid and /etc/subgid ranges
  --time-namespace           give the sandbox its own time namespace
  --rootfs DIR               use DIR as the root instead of host binds
  --read-only                make the root filesystem read-only
  --overlay                  an overlay over the root: writes go to a tmpfs
                             and vanish with the sandbox
  --overlay-dir DIR          like --overlay, but keep the writes in DIR
  --allow-chroot-fallback    chroot if pivot_root is impossible (agent mode)
  --allow-degraded-security  warn instead of failing when a mechanism is
                             missing from the kernel (agent mode)
  -e, --env KEY=VAL|KEY      set a variable (KEY alone: copy it from here)
  --env-file FILE            read KEY=VAL lines from FILE
  -w, --workdir DIR          working directory inside (default /)
  --hostname NAME            hostname inside (default: --name or nucleus)
  -v, --volume HOST:CTR[:ro|:rw]
                             bind HOST at CTR (nosuid,nodev)
  --name NAME                name of the sandbox
  -t, --tty                  give the command a new pseudo-terminal
  --timeout SECS             kill the sandbox after SECS seconds (exit 124)
  --memory SIZE              memory ceiling: 512M, 1G, max
  --cpus N                   CPU time ceiling in CPUs: 0.5, 1.5
  --pids N                   most processes and threads
  --io-weight N              share of block I/O time, 1-10000 (default 100)
                             (limits go through systemd's user manager, or
                             the system manager for root)
  --service-mode MODE        agent (default): missing mechanisms and limits
                             may be allowed with warnings; strict-agent:
                             every mechanism and limit must apply;
                             production: strict-agent plus --memory,
                             --rootfs, deny-all egress, a mini-init,
                             hidepid=2 and Landlock ABI 3 at least
  --trust-level T            trusted (default) or untrusted: never the
                             host's network; needs the gVisor runtime
                             (not yet here: only with
                             --allow-degraded-security, agent mode)
  --audit-log FILE|journal   one JSON line per security decision (the
                             mode, the plan's digest, what is applied,
                             what was degraded and why, the exit)
  --seccomp-mode trace       allow and record every system call instead of
                             filtering (agent mode, in-process only); with
  --seccomp-log FILE         the record (NDJSON) for nucleus seccomp generate
  --seccomp-log-denied       the kernel logs each system call the filter
                             denies (audit log, or dmesg without auditd)
  --violations FILE          each system call the filter denies and each
                             denied egress destination, once, as NDJSON
                             (agent modes; the workload still gets the
                             profile's errno)
  -u, --user U               run as U (name in the root's /etc/passwd, or
                             uid) inside; its primary group unless
  --group G                  says otherwise
  --additional-group G       a supplementary group (repeatable; needs
                             --userns subids unless root)
  --init                     a mini-init as PID 1: reaps orphans, forwards
                             signals (always in production)
  --require-kernel-lockdown L  refuse to start unless the kernel's
                             lockdown is at least L (integrity or
                             confidentiality)
  -h, --help                 show this help

policies (defaults: config/*-default.* in the source, built in):
  --seccomp-profile FILE     OCI seccomp JSON instead of the default profile
  --caps-policy FILE         TOML: capabilities to keep ([bounding] keep,
                             [ambient] keep; default none)
  --landlock-policy FILE     TOML: min_abi, [[rules]] path and access
  --seccomp-profile-sha256 HEX, --caps-policy-sha256 HEX,
  --landlock-policy-sha256 HEX
                             refuse to start unless the file has this
                             SHA-256 (as sha256sum prints it)

agent inputs:
  --context DIR              read-only input at /context
  --context-mode MODE        copy: into a tmpfs before start (default);
                             bind: bind-mounted read-only
  --verify-context-integrity hash DIR before launch; the copy must match
  --workspace DIR            the tree the command works on, at /workspace
  --workspace-mode MODE      bind-rw (default), bind-ro, or copy-in-out:
                             work on a copy, sync changes back on exit
  --sync-on-timeout          sync a copy-in-out workspace back even after
                             --timeout killed the command
  --secret SRC:NAME          the file SRC as /run/secrets/NAME (mode 0400,
                             in memory only)

network:
  --network MODE             none (default): a namespace with loopback only;
                             host: the host's network (needs
                             --allow-host-network; not in strict-agent);
                             bridge: eth0 with NAT to the outside
  --allow-host-network       confirm --network host
  --nat-backend B            for bridge: kernel (a Linux bridge; root or
                             the helper), userspace (pasta, else
                             slirp4netns; rootless), pasta, slirp4netns, or
                             auto (default: kernel when privileged)
  --bridge NAME              the kernel backend's bridge (nucleus0)
  --subnet CIDR              its IPv4 subnet (10.88.0.0/16)
  -p, --publish [IP:]HOST:PORT[/tcp|udp]
                             forward the host's port HOST (on IP, default
                             all) to the sandbox's PORT (repeatable); host
                             ports below 1024 need root or authorization
  --egress-allow CIDR|DOMAIN with --network bridge: deny all outbound
                             traffic but to CIDR or DOMAIN's addresses
                             (resolved through --dns at start and again
                             within their TTL; repeatable), DNS to the
                             --dns resolvers, loopback and replies
  --egress-tcp-port N        allowed networks only on these TCP ports
  --egress-udp-port N        and these UDP ports (repeatable)
  --egress-report FILE       each denied destination once, as NDJSON
                             (default in agent mode: a line on stderr;
                             --violations FILE takes these too)
  --dns IP                   a resolver for /etc/resolv.conf (repeatable, at
                             most 3; default: the host's file)

exit status: the command's; 128+N if killed by signal N; 124 on timeout;
125 if nucleus failed; 126 if COMMAND cannot be executed; 127 if not found";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserNs {
    /// uid/gid 0 inside map to the caller.
    Auto,
    /// The caller's uid/gid inside, mapped to themselves.
    KeepId,
    /// uid/gid 0 inside map to the caller, 1 and up to the caller's first
    /// /etc/subuid and /etc/subgid ranges.
    SubIds,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub host: PathBuf,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub command: Vec<String>,
    /// Never use the helper, even where it would enforce more.
    pub rootless: bool,
    pub userns: UserNs,
    pub time_namespace: bool,
    pub rootfs: Option<PathBuf>,
    pub read_only: bool,
    pub overlay: bool,
    pub overlay_dir: Option<PathBuf>,
    pub allow_chroot_fallback: bool,
    pub allow_degraded_security: bool,
    pub network: Network,
    pub allow_host_network: bool,
    pub bridge: Option<String>,
    pub subnet: Option<String>,
    pub nat: Option<Nat>,
    /// `-p` as given.
    pub publish: Vec<String>,
    pub egress_allow: Vec<String>,
    pub egress_tcp_ports: Vec<String>,
    pub egress_udp_ports: Vec<String>,
    pub egress_report: Option<PathBuf>,
    pub dns: Vec<std::net::IpAddr>,
    /// `-e` entries in order: (name, value); `None` copies the caller's.
    pub env: Vec<(String, Option<String>)>,
    pub env_files: Vec<PathBuf>,
    pub workdir: Option<String>,
    pub hostname: Option<String>,
    pub volumes: Vec<Volume>,
    pub name: Option<String>,
    pub tty: bool,
    pub timeout_secs: Option<u32>,
    pub memory: Option<String>,
    pub cpus: Option<String>,
    pub pids: Option<String>,
    pub io_weight: Option<String>,
    pub mode: ServiceMode,
    pub init: bool,
    pub lockdown: Option<Lockdown>,
    pub trust: Trust,
    pub audit_log: Option<PathBuf>,
    pub seccomp_log_denied: bool,
    pub violations: Option<PathBuf>,
    /// `--seccomp-mode trace` records into this file (`--seccomp-log`).
    pub seccomp_trace: Option<PathBuf>,
    pub seccomp_mode_trace: bool,
    /// `--user`, `--group`, `--additional-group` as given.
    pub user: Option<String>,
    pub group: Option<String>,
    pub groups: Vec<String>,
    pub agent: AgentSpec,
    pub policy: crate::policy::PolicySpec,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContextMode {
    #[default]
    Copy,
    Bind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WorkspaceMode {
    #[default]
    BindRw,
    BindRo,
    CopyInOut,
}

/// What an agent brings: inputs, a workspace, secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentSpec {
    pub context: Option<PathBuf>,
    pub context_mode: ContextMode,
    pub verify_context: bool,
    pub workspace: Option<PathBuf>,
    pub workspace_mode: WorkspaceMode,
    pub sync_on_timeout: bool,
    /// `--secret SRC:DEST` as given.
    pub secrets: Vec<(PathBuf, String)>,
}

/// `--nat-backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    Auto,
    Kernel,
    Userspace,
    Pasta,
    Slirp4netns,
}

/// `--network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    None,
    Host,
    Bridge,
}

impl RunSpec {
    fn new() -> Self {
        RunSpec {
            command: Vec::new(),
            rootless: false,
            userns: UserNs::Auto,
            time_namespace: false,
            rootfs: None,
            read_only: false,
            overlay: false,
            overlay_dir: None,
            allow_chroot_fallback: false,
            allow_degraded_security: false,
            network: Network::None,
            allow_host_network: false,
            bridge: None,
            subnet: None,
            nat: None,
            publish: Vec::new(),
            egress_allow: Vec::new(),
            egress_tcp_ports: Vec::new(),
            egress_udp_ports: Vec::new(),
            egress_report: None,
            dns: Vec::new(),
            env: Vec::new(),
            env_files: Vec::new(),
            workdir: None,
            hostname: None,
            volumes: Vec::new(),
            name: None,
            tty: false,
            timeout_secs: None,
            memory: None,
            cpus: None,
            pids: None,
            io_weight: None,
            mode: ServiceMode::Agent,
            init: false,
            lockdown: None,
            trust: Trust::Trusted,
            audit_log: None,
            seccomp_log_denied: false,
            violations: None,
            seccomp_trace: None,
            seccomp_mode_trace: false,
            user: None,
            group: None,
            groups: Vec::new(),
            agent: AgentSpec::default(),
            policy: crate::policy::PolicySpec::default(),
        }
    }
}

#[derive(Debug)]
pub enum Command {
    Run(Box<RunSpec>),
    /// Management through the helper.
    Ps,
    Stop {
        id: SandboxId,
        signal: StopSignal,
    },
    /// `nucleus seccomp generate TRACE... -o PROFILE`.
    SeccompGenerate {
        traces: Vec<PathBuf>,
        output: PathBuf,
    },
    Help,
    Version,
}

fn string(value: OsString, flag: &str) -> Result<String> {
    value
        .into_string()
        .map_err(|v| anyhow!("{flag} {}: not valid UTF-8", v.to_string_lossy()))
}

/// `seccomp generate TRACE... -o PROFILE`.
fn parse_seccomp(mut parser: lexopt::Parser) -> Result<Command> {
    match parser.next()? {
        Some(Value(v)) if v == "generate" => {}
        _ => bail!("nucleus seccomp: the one subcommand is 'generate TRACE... -o PROFILE.json'"),
    }
    let (mut traces, mut output) = (Vec::new(), None);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('o') | Long("output") => output = Some(parser.value()?.into()),
            Value(v) => traces.push(v.into()),
            other => return Err(other.unexpected().into()),
        }
    }
    let Some(output) = output else {
        bail!("nucleus seccomp generate: -o PROFILE.json says where the profile goes");
    };
    if traces.is_empty() {
        bail!("nucleus seccomp generate: give the trace files (--seccomp-log of --seccomp-mode trace)");
    }
    Ok(Command::SeccompGenerate { traces, output })
}

/// Parses a full command line, program name first.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command> {
    let mut parser = lexopt::Parser::from_iter(args);
    match parser.next()? {
        Some(Value(cmd)) if cmd == "run" => parse_run(parser).map(|s| Command::Run(Box::new(s))),
        Some(Value(cmd)) if cmd == "ps" => {
            no_more(&mut parser, "ps")?;
            Ok(Command::Ps)
        }
        Some(Value(cmd)) if cmd == "stop" || cmd == "kill" => {
            let (what, signal) = if cmd == "stop" {
                ("stop", StopSignal::Term)
            } else {
                ("kill", StopSignal::Kill)
            };
            let id = match parser.next()? {
                Some(Value(v)) => SandboxId::try_from(string(v, what)?)
                    .map_err(|e| anyhow!("nucleus {what}: {e}"))?,
                _ => bail!("nucleus {what}: which sandbox? give its ID (see nucleus ps)"),
            };
            no_more(&mut parser, what)?;
            Ok(Command::Stop { id, signal })
        }
        Some(Value(cmd)) if cmd == "seccomp" => parse_seccomp(parser),
        Some(Value(cmd)) if cmd == "help" => Ok(Command::Help),
        Some(Short('h') | Long("help")) => Ok(Command::Help),
        Some(Long("version")) => Ok(Command::Version),
        Some(Value(cmd)) => bail!(
            "unknown command {:?}: try 'nucleus run -- COMMAND'",
            cmd.to_string_lossy()
        ),
        Some(other) => bail!(
            "{}: put options after 'run', e.g. 'nucleus run OPTIONS -- COMMAND'",
            other.unexpected()
        ),
        None => bail!("no command given: try 'nucleus run -- COMMAND' or 'nucleus --help'"),
    }
}

fn no_more(parser: &mut lexopt::Parser, what: &str) -> Result<()> {
    match parser.next()? {
        None => Ok(()),
        Some(arg) => bail!("nucleus {what}: unexpected {}", arg.unexpected()),
    }
}

fn parse_run(mut parser: lexopt::Parser) -> Result<RunSpec> {
    let mut spec = RunSpec::new();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("rootless") => spec.rootless = true,
            Long("userns") => {
                let v = string(parser.value()?, "--userns")?;
                spec.userns = match v.as_str() {
                    "auto" => UserNs::Auto,
                    "keep-id" => UserNs::KeepId,
                    "subids" => UserNs::SubIds,
                    _ => bail!("--userns {v}: unknown mode; use auto, keep-id or subids"),
                };
            }
            Long("time-namespace") => spec.time_namespace = true,
            Long("rootfs") => spec.rootfs = Some(parser.value()?.into()),
            Long("read-only") => spec.read_only = true,
            Long("overlay") => spec.overlay = true,
            Long("overlay-dir") => spec.overlay_dir = Some(parser.value()?.into()),
            Long("allow-chroot-fallback") => spec.allow_chroot_fallback = true,
            Long("network") => {
                let v = string(parser.value()?, "--network")?;
                spec.network = match v.as_str() {
                    "none" => Network::None,
                    "host" => Network::Host,
                    "bridge" => Network::Bridge,
                    _ => bail!("--network {v}: unknown mode; use none, host or bridge"),
                };
            }
            Long("allow-host-network") => spec.allow_host_network = true,
            Long("bridge") => spec.bridge = Some(string(parser.value()?, "--bridge")?),
            Long("subnet") => spec.subnet = Some(string(parser.value()?, "--subnet")?),
            Long("nat-backend") => {
                let v = string(parser.value()?, "--nat-backend")?;
                spec.nat = Some(match v.as_str() {
                    "auto" => Nat::Auto,
                    "kernel" => Nat::Kernel,
                    "userspace" => Nat::Userspace,
                    "pasta" => Nat::Pasta,
                    "slirp4netns" => Nat::Slirp4netns,
                    _ => bail!("--nat-backend {v}: unknown backend; use auto, kernel, userspace, pasta or slirp4netns"),
                });
            }
            Short('p') | Long("publish") => {
                spec.publish.push(string(parser.value()?, "--publish")?)
            }
            Long("egress-allow") => spec
                .egress_allow
                .push(string(parser.value()?, "--egress-allow")?),
            Long("egress-tcp-port") => spec
                .egress_tcp_ports
                .push(string(parser.value()?, "--egress-tcp-port")?),
            Long("egress-report") => spec.egress_report = Some(parser.value()?.into()),
            Long("egress-udp-port") => spec
                .egress_udp_ports
                .push(string(parser.value()?, "--egress-udp-port")?),
            Long("dns") => {
                let v = string(parser.value()?, "--dns")?;
                let ip = v.parse().map_err(|_| {
                    anyhow!("--dns {v}: expected an IPv4 or IPv6 address, like 192.0.2.53")
                })?;
                spec.dns.push(ip);
            }
            Long("allow-degraded-security") => spec.allow_degraded_security = true,
            Short('e') | Long("env") => {
                let v = string(parser.value()?, "--env")?;
                spec.env.push(match v.split_once('=') {
                    Some((k, val)) => (k.to_owned(), Some(val.to_owned())),
                    None => (v, None),
                });
            }
            Long("env-file") => spec.env_files.push(parser.value()?.into()),
            Short('w') | Long("workdir") => {
                spec.workdir = Some(string(parser.value()?, "--workdir")?)
            }
            Long("hostname") => spec.hostname = Some(string(parser.value()?, "--hostname")?),
            Short('v') | Long("volume") => {
                let v = string(parser.value()?, "--volume")?;
                spec.volumes.push(parse_volume(&v)?);
            }
            Long("name") => spec.name = Some(string(parser.value()?, "--name")?),
            Long("memory") => spec.memory = Some(string(parser.value()?, "--memory")?),
            Long("cpus") => spec.cpus = Some(string(parser.value()?, "--cpus")?),
            Long("pids") => spec.pids = Some(string(parser.value()?, "--pids")?),
            Long("io-weight") => spec.io_weight = Some(string(parser.value()?, "--io-weight")?),
            Long("service-mode") => {
                let v = string(parser.value()?, "--service-mode")?;
                spec.mode = match v.as_str() {
                    "agent" => ServiceMode::Agent,
                    "strict-agent" => ServiceMode::StrictAgent,
                    "production" => ServiceMode::Production,
                    _ => bail!(
                        "--service-mode {v}: unknown mode; use agent, strict-agent or production"
                    ),
                };
            }
            Short('t') | Long("tty") => spec.tty = true,
            Long("init") => spec.init = true,
            Long("audit-log") => spec.audit_log = Some(parser.value()?.into()),
            Long("seccomp-log-denied") => spec.seccomp_log_denied = true,
            Long("violations") => spec.violations = Some(parser.value()?.into()),
            Long("seccomp-mode") => {
                let v = string(parser.value()?, "--seccomp-mode")?;
                spec.seccomp_mode_trace = match v.as_str() {
                    "enforce" => false,
                    "trace" => true,
                    _ => bail!("--seccomp-mode {v}: use enforce or trace"),
                };
            }
            Long("seccomp-log") => spec.seccomp_trace = Some(parser.value()?.into()),
            Short('u') | Long("user") => spec.user = Some(string(parser.value()?, "--user")?),
            Long("group") => spec.group = Some(string(parser.value()?, "--group")?),
            Long("additional-group") => spec
                .groups
                .push(string(parser.value()?, "--additional-group")?),
            Long("trust-level") => {
                let v = string(parser.value()?, "--trust-level")?;
                spec.trust = match v.as_str() {
                    "trusted" => Trust::Trusted,
                    "untrusted" => Trust::Untrusted,
                    _ => bail!("--trust-level {v}: use trusted or untrusted"),
                };
            }
            Long("require-kernel-lockdown") => {
                let v = string(parser.value()?, "--require-kernel-lockdown")?;
                spec.lockdown = Some(match v.as_str() {
                    "integrity" => Lockdown::Integrity,
                    "confidentiality" => Lockdown::Confidentiality,
                    _ => bail!("--require-kernel-lockdown {v}: use integrity or confidentiality"),
                });
            }
            Long("timeout") => {
                let v = string(parser.value()?, "--timeout")?;
                let secs: u32 = v.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    anyhow!("--timeout {v}: expected a whole number of seconds, at least 1")
                })?;
                spec.timeout_secs = Some(secs);
            }
            Short('h') | Long("help") => bail!("{USAGE}"),
            Value(first) => {
                spec.command.push(string(first, "COMMAND")?);
                for rest in parser.raw_args()? {
                    spec.command.push(string(rest, "COMMAND")?);
                }
            }
            Long(flag) => {
                let flag = flag.to_owned();
                if !parse_agent_flag(&flag, &mut parser, &mut spec.agent)?
                    && !crate::policy::parse_flag(&flag, &mut parser, &mut spec.policy)?
                {
                    bail!("unknown option --{flag}; see 'nucleus run --help'");
                }
            }
            other => return Err(other.unexpected()).context("see 'nucleus run --help'"),
        }
    }
    if spec.command.is_empty() {
        bail!("no command given: 'nucleus run [OPTIONS] -- COMMAND [ARGS...]'");
    }
    Ok(spec)
}

/// The agent options; false if `flag` is not one of them.
fn parse_agent_flag(
    flag: &str,
    parser: &mut lexopt::Parser,
    agent: &mut AgentSpec,
) -> Result<bool> {
    match flag {
        "context" => agent.context = Some(parser.value()?.into()),
        "context-mode" => {
            let v = string(parser.value()?, "--context-mode")?;
            agent.context_mode = match v.as_str() {
                "copy" => ContextMode::Copy,
                "bind" => ContextMode::Bind,
                _ => bail!("--context-mode {v}: unknown mode; use copy or bind"),
            };
        }
        "verify-context-integrity" => agent.verify_context = true,
        "workspace" => agent.workspace = Some(parser.value()?.into()),
        "workspace-mode" => {
            let v = string(parser.value()?, "--workspace-mode")?;
            agent.workspace_mode = match v.as_str() {
                "bind-rw" => WorkspaceMode::BindRw,
                "bind-ro" => WorkspaceMode::BindRo,
                "copy-in-out" => WorkspaceMode::CopyInOut,
                _ => {
                    bail!("--workspace-mode {v}: unknown mode; use bind-rw, bind-ro or copy-in-out")
                }
            };
        }
        "sync-on-timeout" => agent.sync_on_timeout = true,
        "secret" => {
            let v = string(parser.value()?, "--secret")?;
            let (src, dest) = v
                .rsplit_once(':')
                .filter(|(s, d)| !s.is_empty() && !d.is_empty())
                .ok_or_else(|| {
                    anyhow!("--secret {v}: expected SRC:NAME, e.g. ~/.token:api-token")
                })?;
            agent.secrets.push((src.into(), dest.to_owned()));
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `HOST:CTR[:ro|:rw]`.
fn parse_volume(v: &str) -> Result<Volume> {
    let parts: Vec<&str> = v.split(':').collect();
    let (host, target, read_only) = match parts.as_slice() {
        [host, target] => (*host, *target, false),
        [host, target, "ro"] => (*host, *target, true),
        [host, target, "rw"] => (*host, *target, false),
        [_, _, opt] => bail!("--volume {v}: unknown option {opt:?}; use ro or rw"),
        _ => bail!("--volume {v}: expected HOST:CONTAINER[:ro|:rw]"),
    };
    if host.is_empty() || target.is_empty() {
        bail!("--volume {v}: expected HOST:CONTAINER[:ro|:rw] with both paths non-empty");
    }
    Ok(Volume {
        host: host.into(),
        target: target.to_owned(),
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<RunSpec> {
        let mut all = vec![OsString::from("nucleus"), OsString::from("run")];
        all.extend(args.iter().map(OsString::from));
        match parse(all)? {
            Command::Run(spec) => Ok(*spec),
            other => bail!("unexpected {other:?}"),
        }
    }

    #[test]
    fn parses_options_then_command() {
        let spec = run(&[
            "-e",
            "A=1",
            "-e",
            "B",
            "-v",
            "/h:/c:ro",
            "-t",
            "--timeout",
            "5",
            "--",
            "sh",
            "-c",
            "echo -e",
        ])
        .unwrap();
        assert_eq!(spec.command, ["sh", "-c", "echo -e"]);
        assert_eq!(
            spec.env,
            [("A".into(), Some("1".into())), ("B".into(), None)]
        );
        assert_eq!(
            spec.volumes,
            [Volume {
                host: "/h".into(),
                target: "/c".into(),
                read_only: true
            }]
        );
        assert!(spec.tty);
        assert_eq!(spec.timeout_secs, Some(5));
    }

    #[test]
    fn options_stop_at_the_command() {
        let spec = run(&["ls", "-l", "--tty"]).unwrap();
        assert_eq!(spec.command, ["ls", "-l", "--tty"]);
        assert!(!spec.tty);
    }

    #[test]
    fn bad_input_names_the_flag() {
        for (args, needle) in [
            (vec!["--bogus", "true"], "--bogus"),
            (vec!["--userns", "x", "true"], "--userns"),
            (vec!["-v", "/a", "true"], "--volume"),
            (vec!["-v", "/a:/b:zz", "true"], "--volume"),
            (vec!["--timeout", "0", "true"], "--timeout"),
            (vec!["--timeout", "x", "true"], "--timeout"),
            (vec![], "no command"),
        ] {
            let err = format!("{:#}", run(&args).unwrap_err());
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}
