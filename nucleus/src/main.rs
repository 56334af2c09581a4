//! `nucleus`, the unprivileged front end: parses and validates everything
//! the user says (flags, files) as the calling user, compiles it into an
//! exact Plan and runs it in-process inside a user namespace.
//!
//! Trust level: runs with the caller's privileges only. It must stay
//! single-threaded (the executor forks), and it never relies on anything
//! the sandbox could influence after the fork.

mod agent;
mod cli;
mod compile;
mod seccomp;
#[cfg(test)]
mod seccomp_oci;

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
        cli::Command::Run(spec) => {
            let (uid, gid) = sandbox::caller_ids();
            let (plan, inputs) = compile::compile(&spec, compile::Caller { uid, gid })?;
            let outcome = sandbox::run(&plan, inputs)?;
            if outcome.timed_out {
                return Ok(EXIT_TIMEOUT);
            }
            Ok(match outcome.status {
                ExitStatus::Code(c) => c,
                s @ ExitStatus::Signal(_) => s.shell_code(),
            })
        }
    }
}
