//! `nucleus-probe`: a small static binary that runs *inside* a Nucleus
//! sandbox, on the untrusted side, and reports what it sees as JSON on
//! stdout: identity, capabilities, no_new_privs, seccomp, Landlock,
//! namespaces, mounts, environment, open fds and network interfaces
//! (`report`), or the result of one escape/capability attempt (`try`).
//!
//! Test-only: it is never shipped or installed, and nothing in it is a
//! security boundary; it deliberately tries things a sandbox must forbid.
//! The integration tests compare its JSON with what the sandbox promised,
//! so it must never panic or exit non-zero because something was denied:
//! every failure becomes a JSON field. Exit status 2 means a malformed
//! command line only.
//!
//! Dependencies: `libc` only, so it links statically
//! (`cargo rustc -p nucleus-probe --release -- -C target-feature=+crt-static`)
//! and runs in an empty root. A plain `cargo build --release` of the
//! workspace writes a dynamically linked binary to the same path, so tests
//! that copy it into an empty root should build it with that command (or
//! check it with `file`). All `unsafe` lives in `sys`.

mod attempts;
mod json;
mod misc;
mod mountinfo;
mod report;
mod sys;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use attempts::Usage;
use json::Json;

const USAGE_EXIT: u8 = 2;
/// Stdout could not be written: the report was lost, so say so.
const OUTPUT_EXIT: u8 = 3;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match dispatch(&args) {
        Ok(code) => code,
        Err(Usage(msg)) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "nucleus-probe: {msg}");
            if !msg.starts_with("usage:") {
                let _ = write!(err, "\n{}", usage_text());
            }
            ExitCode::from(USAGE_EXIT)
        }
    }
}

fn dispatch(args: &[OsString]) -> Result<ExitCode, Usage> {
    let (cmd, rest) = match args.split_first() {
        Some((cmd, rest)) => (cmd.to_str().unwrap_or(""), rest),
        None => return Err(Usage("no command".to_owned())),
    };
    let text = |i: usize| -> Result<&str, Usage> {
        match (rest.len(), rest.get(i).and_then(|s| s.to_str())) {
            (1, Some(s)) => Ok(s),
            _ => Err(Usage(format!("{cmd} takes exactly one argument"))),
        }
    };
    match cmd {
        "report" if rest.is_empty() => Ok(emit(&report::build())),
        "try" => {
            let (name, attempt_args) = rest
                .split_first()
                .ok_or_else(|| Usage("try needs an attempt".to_owned()))?;
            let name = name.to_str().unwrap_or("");
            let outcome = attempts::run(name, attempt_args)?;
            Ok(emit(&outcome.to_json(name)))
        }
        "exit" => {
            let code: i32 = text(0)?
                .parse()
                .map_err(|_| Usage("usage: nucleus-probe exit N".to_owned()))?;
            std::process::exit(code)
        }
        "sleep" => {
            misc::sleep(text(0)?)?;
            Ok(ExitCode::SUCCESS)
        }
        "signal-self" => Ok(emit(&misc::signal_self(text(0)?)?)),
        "wait-signal" if rest.is_empty() => {
            let ready = || {
                let mut out = std::io::stdout().lock();
                out.write_all(b"ready\n").and_then(|()| out.flush()).is_ok()
            };
            Ok(emit(&misc::wait_signal(ready)?))
        }
        "tty" if rest.is_empty() => Ok(emit(&misc::tty())),
        _ => Err(Usage(format!("bad command line for {cmd:?}"))),
    }
}

/// Prints `value` as one line of JSON on stdout.
fn emit(value: &Json) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let line = value.render();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(OUTPUT_EXIT),
    }
}

fn usage_text() -> String {
    let mut text = String::from(
        "usage:\n  nucleus-probe report\n  nucleus-probe try ATTEMPT [ARGS...]\n  \
         nucleus-probe exit N\n  nucleus-probe sleep SECS\n  nucleus-probe signal-self SIG\n  \
         nucleus-probe wait-signal\n  nucleus-probe tty\n\nattempts:\n",
    );
    for spec in attempts::ATTEMPTS {
        text.push_str("  ");
        text.push_str(spec);
        text.push('\n');
    }
    text
}
