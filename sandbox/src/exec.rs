//! Preparing the final execve: finding the program inside the new root and
//! turning the plan's argv and environment into C strings, all before the
//! seccomp filter is installed.

use std::ffi::CString;
use std::io;
use std::os::unix::fs::PermissionsExt;

use protocol::Process;

use crate::sys;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub struct Prepared {
    pub program: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

/// Resolves the program like execvp(3) would, against the sandbox's own
/// `PATH`: ENOENT when nothing matches, EACCES when only non-executable
/// files do.
pub fn prepare(process: &Process) -> io::Result<Prepared> {
    let program = resolve(process)?;
    let argv = process
        .argv
        .args()
        .iter()
        .map(|a| sys::c_string(a.as_str()))
        .collect::<io::Result<_>>()?;
    let envp = process
        .env
        .iter()
        .map(|(k, v)| sys::c_string(&format!("{k}={v}")))
        .collect::<io::Result<_>>()?;
    Ok(Prepared {
        program: sys::c_string(&program)?,
        argv,
        envp,
    })
}

fn resolve(process: &Process) -> io::Result<String> {
    let name = process.argv.program().as_str();
    if name.contains('/') {
        return Ok(name.to_owned());
    }
    let path = process
        .env
        .iter()
        .find(|(k, _)| k.as_str() == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    let mut denied = false;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = format!("{dir}/{name}");
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return Ok(candidate),
            Ok(_) => denied = true,
            Err(_) => {}
        }
    }
    Err(io::Error::from_raw_os_error(if denied {
        libc::EACCES
    } else {
        libc::ENOENT
    }))
}
