//! `nucleus`, the unprivileged front end: parses and validates everything
//! the user says (flags, files) as the calling user, compiles it into an
//! exact Plan and runs it in-process inside a user namespace.
//!
//! Trust level: runs with the caller's privileges only. It must stay
//! single-threaded (the executor forks), and it never relies on anything
//! the sandbox could influence after the fork.

mod agent;
mod audit;
mod cli;
mod client;
mod compile;
mod identity;
mod limits;
mod lockdown;
mod modes;
mod network;
mod policy;
mod policy_caps;
mod policy_landlock;
mod seccomp;
mod seccomp_oci;
mod seccomp_trace;
mod systemd;

use std::process::ExitCode;

use protocol::ExitStatus;

/// podman's convention for errors of the runtime itself.
const EXIT_NUCLEUS: u8 = 125;
const EXIT_NOT_EXECUTABLE: u8 = 126;
const EXIT_NOT_FOUND: u8 = 127;
/// timeout(1)'s convention.
const EXIT_TIMEOUT: u8 = 124;

fn main() -> ExitCode {
    init_logging();
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("nucleus: {failure}");
            ExitCode::from(failure.code)
        }
    }
}

/// Logs go to stderr only when `NUCLEUS_LOG` asks for them (e.g. `debug`).
fn init_logging() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("NUCLEUS_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .without_time()
            .init();
    }
}

struct Failure {
    code: u8,
    message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure {
            code: EXIT_NUCLEUS,
            message: format!("{e:#}"),
        }
    }
}

impl From<sandbox::Error> for Failure {
    fn from(e: sandbox::Error) -> Self {
        let code = match &e {
            sandbox::Error::Exec { source, .. } if source.raw_os_error() == Some(libc::ENOENT) => {
                EXIT_NOT_FOUND
            }
            sandbox::Error::Exec { .. } => EXIT_NOT_EXECUTABLE,
            _ => EXIT_NUCLEUS,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

/// The in-process executor's hooks: cgroup limits through systemd.
struct RootlessHooks<'a> {
    plan: &'a protocol::Plan,
    root: bool,
    /// What could not be applied, for the audit log (agent mode warns).
    degraded: Vec<String>,
}

/// `nucleus run`: the sandbox's exit status in the shell's convention.
fn run_sandbox(
    spec: &cli::RunSpec,
    mut audit: Option<&mut audit::AuditLog>,
) -> Result<u8, Failure> {
    if let Some(level) = spec.lockdown {
        lockdown::require(level)?;
    }
    let (uid, gid) = sandbox::caller_ids();
    let via_helper = uid != 0 && !spec.rootless && client::available();
    let caller = compile::Caller {
        uid,
        gid,
        via_helper,
    };
    let (plan, inputs) = compile::compile(spec, caller)?;
    // cgroup limits and bridges for an unprivileged caller: the
    // helper does them where it is installed; --rootless keeps the
    // sandbox in-process.
    let needs_privilege = plan.limits.wants_cgroup()
        || matches!(
            &plan.network,
            protocol::NetworkMode::Bridge(protocol::Bridge {
                backend: protocol::NatBackend::Kernel(_),
                ..
            })
        );
    if let Some(log) = audit.as_mut() {
        let mut fields = audit::plan_fields(&plan, via_helper && needs_privilege)?;
        fields.push((
            "policy_files",
            audit::Json::List(audit::policy_files(&spec.policy)),
        ));
        log.record("start", &fields)?;
    }
    if via_helper && needs_privilege {
        if plan.security.seccomp_mode == protocol::SeccompMode::Trace {
            return Err(anyhow::anyhow!(
                "--seccomp-mode trace runs in-process, not through the helper: drop the limits and the kernel bridge, or add --rootless"
            )
            .into());
        }
        let ended = client::run(&plan, inputs.secrets, inputs.violations)?;
        if ended.out_of_memory {
            eprintln!("nucleus: the sandbox ran out of memory (--memory) and was killed");
        }
        if ended.timed_out {
            eprintln!("nucleus: timeout: the sandbox was killed after --timeout");
            return Ok(EXIT_TIMEOUT);
        }
        return Ok(ended.status.shell_code());
    }
    let mut hooks = RootlessHooks {
        plan: &plan,
        root: uid == 0,
        degraded: Vec::new(),
    };
    let outcome = sandbox::run(&plan, inputs, &mut hooks);
    if let Some(log) = audit.as_mut() {
        for why in &hooks.degraded {
            log.record("degraded", &[("why", audit::Json::Str(why.clone()))])?;
        }
    }
    let outcome = outcome?;
    if outcome.timed_out {
        return Ok(EXIT_TIMEOUT);
    }
    Ok(match outcome.status {
        ExitStatus::Code(c) => c,
        s @ ExitStatus::Signal(_) => s.shell_code(),
    })
}

impl sandbox::Hooks for RootlessHooks<'_> {
    fn place(&mut self, pid: i32) -> Result<(), String> {
        if let Some(why) = place_in_cgroup(self.plan, self.root, pid)? {
            eprintln!("nucleus: warning: {why}");
            self.degraded.push(why);
        }
        Ok(())
    }
}

/// Puts a sandbox that asks for cgroup limits into a systemd scope. Runs
/// after the fork (zbus starts threads, which must not exist when the
/// executor forks). Without a manager, agent mode goes on (the warning is
/// returned) and strict modes refuse.
fn place_in_cgroup(plan: &protocol::Plan, root: bool, pid: i32) -> Result<Option<String>, String> {
    if !plan.limits.wants_cgroup() {
        return Ok(None);
    }
    let name = plan.name.as_ref().map_or("sandbox", |n| n.as_str());
    let manager = match systemd::Manager::connect(root) {
        Ok(manager) => manager,
        Err(e) if !modes::unenforced_limits_are_fatal(plan.mode) => {
            return Ok(Some(format!(
                "--memory/--cpus/--pids are not enforced: {e:#}"
            )));
        }
        Err(e) => {
            return Err(format!(
                "{} mode requires the limits to be enforced, and there is no systemd manager to enforce them: {e:#}",
                plan.mode
            ))
        }
    };
    let pid = u32::try_from(pid).map_err(|e| e.to_string())?;
    manager
        .place(pid, name, &plan.limits)
        .map(|()| None)
        .map_err(|e| format!("{e:#}"))
}

fn no_helper(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "nucleus {what} manages sandboxes started through the helper, and it is not installed ({} is missing)",
        client::SOCKET
    )
}

/// `nucleus ps`: one sandbox per line under a header, like podman ps.
fn render_list(list: &[protocol::SandboxInfo]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut out = format!(
        "{:<16}  {:<8}  {:<20}  {:<12}  {}\n",
        "ID", "UID", "NAME", "PLAN", "RUNNING"
    );
    for s in list {
        let digest = s.digest.to_string();
        out.push_str(&format!(
            "{:<16}  {:<8}  {:<20}  {:<12}  {}s\n",
            s.id,
            s.uid,
            s.name.as_ref().map_or("-", |n| n.as_str()),
            digest.get(..12).unwrap_or_default(),
            now.saturating_sub(s.started),
        ));
    }
    out
}

fn run() -> Result<u8, Failure> {
    match cli::parse(std::env::args_os())? {
        cli::Command::Help => {
            println!("{}", cli::USAGE);
            Ok(0)
        }
        cli::Command::Version => {
            println!("nucleus {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        cli::Command::Ps => {
            if !client::available() {
                return Err(no_helper("ps").into());
            }
            print!("{}", render_list(&client::list()?));
            Ok(0)
        }
        cli::Command::Stop { id, signal } => {
            if !client::available() {
                return Err(no_helper("stop").into());
            }
            client::stop(&id, signal)?;
            Ok(0)
        }
        cli::Command::SeccompGenerate { traces, output } => {
            let profile = seccomp_trace::generate(&traces)?;
            std::fs::write(&output, profile)
                .map_err(|e| anyhow::anyhow!("-o {}: {e}", output.display()))?;
            Ok(0)
        }
        cli::Command::Run(spec) => {
            let mut audit = spec
                .audit_log
                .as_deref()
                .map(audit::AuditLog::open)
                .transpose()?;
            let ran = run_sandbox(&spec, audit.as_mut());
            if let Some(log) = audit.as_mut() {
                let (event, fields) = match &ran {
                    Ok(code) => ("exit", vec![("status", audit::Json::Num(u64::from(*code)))]),
                    Err(e) => (
                        "refused",
                        vec![("reason", audit::Json::Str(format!("{e:#}")))],
                    ),
                };
                log.record(event, &fields)?;
            }
            ran
        }
    }
}
