//! Running the real `nucleus` binary, as root or as an unprivileged user,
//! with the static probe bound at `/probe`, and checking after every run
//! that nothing was left behind on the host.
//!
//! The binaries are copied into a fresh 0755 directory under the temp dir
//! so the unprivileged user can execute them; per-test directories live
//! under it too, and the whole tree is removed when the test process exits.

mod dirs;
mod probe;
mod run;
pub mod sys;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

pub use dirs::{give, TempDir};
pub use probe::{assert_denied, attempt, host_namespace, report, words, Attempt};
pub use run::{children_of, cmdline, dies_within, helper_output, Nucleus};

/// The probe inside every sandbox started with [`Nucleus::new`].
pub const PROBE: &str = "/probe/nucleus-probe";
/// How long any one nucleus run, or any one awaited line, may take. Only a
/// hang trips it; the machine may be busy building.
pub const DEADLINE: Duration = Duration::from_secs(60);

const BUILD_PROBE: &str = "build the static probe with `cargo build --release -p nucleus-probe` \
     (static through .cargo/config.toml; or `cargo rustc -p nucleus-probe --release -- -C \
     target-feature=+crt-static`) and set NUCLEUS_PROBE to it, e.g. \
     NUCLEUS_PROBE=$PWD/target/x86_64-unknown-linux-gnu/release/nucleus-probe";

// ---------------------------------------------------------------- fixture

/// The copied binaries and the test process's own state at start-up.
#[derive(Debug)]
pub struct Fixture {
    root: PathBuf,
    nucleus: PathBuf,
    probe_dir: PathBuf,
    /// Lines of this process's /proc/self/mountinfo before any test ran.
    mounts: usize,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

pub fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| match Fixture::create() {
        Ok(f) => f,
        Err(e) => panic!("integration test fixture: {e}"),
    })
}

extern "C" fn remove_fixture() {
    if let Some(f) = FIXTURE.get() {
        let _ = fs::remove_dir_all(&f.root);
    }
}

impl Fixture {
    fn create() -> Result<Fixture, String> {
        let probe = probe_path()?;
        let tmp = std::env::temp_dir();
        let searchable = fs::metadata(&tmp).is_ok_and(|m| m.permissions().mode() & 0o001 != 0);
        if !searchable {
            return Err(format!(
                "the temp dir {} must be searchable by everyone (the unprivileged test user runs nucleus from it); set TMPDIR=/tmp",
                tmp.display()
            ));
        }
        sweep_stale(&tmp);
        let root = tmp.join(format!("nucleus-it-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let probe_dir = root.join("probe");
        for dir in [&root, &root.join("bin"), &probe_dir, &root.join("work")] {
            make_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        sys::at_exit(remove_fixture);
        let nucleus = root.join("bin/nucleus");
        copy_executable(Path::new(env!("CARGO_BIN_EXE_nucleus")), &nucleus)?;
        copy_executable(&probe, &probe_dir.join("nucleus-probe"))?;
        sys::become_child_subreaper().map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
        Ok(Fixture {
            root,
            nucleus,
            probe_dir,
            mounts: mountinfo_lines(),
        })
    }

    /// The host directory bound read-only at `/probe`.
    pub fn probe_dir(&self) -> &Path {
        &self.probe_dir
    }
}

/// `NUCLEUS_PROBE`, checked to be a static executable: it must run in an
/// empty root.
fn probe_path() -> Result<PathBuf, String> {
    let path = std::env::var_os("NUCLEUS_PROBE")
        .map(PathBuf::from)
        .ok_or_else(|| format!("NUCLEUS_PROBE is not set: {BUILD_PROBE}"))?;
    let bytes = fs::read(&path)
        .map_err(|e| format!("NUCLEUS_PROBE={}: {e}: {BUILD_PROBE}", path.display()))?;
    match elf_has_interpreter(&bytes) {
        Some(false) => Ok(path),
        Some(true) => Err(format!(
            "NUCLEUS_PROBE={} is dynamically linked (it has a program interpreter): {BUILD_PROBE}",
            path.display()
        )),
        None => Err(format!(
            "NUCLEUS_PROBE={} is not a 64-bit ELF executable: {BUILD_PROBE}",
            path.display()
        )),
    }
}

/// Whether a 64-bit little-endian ELF file has a PT_INTERP program
/// header; `None` if it is not such a file.
fn elf_has_interpreter(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    let mut interp = false;
    for i in 0..phnum {
        interp |= u32_at(phoff + i * phentsize)? == PT_INTERP;
    }
    Some(interp)
}

/// Removes fixture directories of test processes that no longer exist.
fn sweep_stale(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("nucleus-it-")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn make_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
}

fn copy_executable(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to)
        .and_then(|_| fs::set_permissions(to, fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}

fn mountinfo_lines() -> usize {
    fs::read_to_string("/proc/self/mountinfo")
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- identities

/// Whom a security test runs nucleus as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The test process itself, which must be root.
    Root,
    /// `NUCLEUS_TEST_USER` (default `nucleus-test`), switched to from root.
    User,
}

/// A resolved caller of nucleus.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Switch to `uid`/`gid` before running nucleus.
    switch: bool,
}

impl Identity {
    /// The test process as it is, root or not: for tests that are not
    /// about privileges.
    pub fn invoker() -> Identity {
        Identity {
            name: "invoker".to_owned(),
            uid: sys::getuid(),
            gid: sys::getgid(),
            switch: false,
        }
    }
}

impl Who {
    /// The identity to run as, or `None` (after a loud SKIPPED line) when
    /// it is unavailable. `NUCLEUS_REQUIRE_ALL=1` turns a skip into a
    /// failure.
    pub fn resolve(self) -> Option<Identity> {
        if sys::geteuid() != 0 {
            return skip("not running as root (run the suite as root for the root and unprivileged-user tests)");
        }
        match self {
            Who::Root => Some(Identity {
                name: "root".to_owned(),
                ..Identity::invoker()
            }),
            Who::User => {
                let name =
                    std::env::var("NUCLEUS_TEST_USER").unwrap_or_else(|_| "nucleus-test".into());
                match lookup_user(&name) {
                    Some((0, _)) => panic!("NUCLEUS_TEST_USER={name} is uid 0; it must be an unprivileged user"),
                    Some((uid, gid)) => Some(Identity {
                        name,
                        uid,
                        gid,
                        switch: true,
                    }),
                    None => skip(&format!(
                        "user {name} does not exist: create it with `useradd --system --no-create-home --shell /usr/sbin/nologin {name}` or set NUCLEUS_TEST_USER"
                    )),
                }
            }
        }
    }
}

fn skip(reason: &str) -> Option<Identity> {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_owned();
    if std::env::var("NUCLEUS_REQUIRE_ALL").as_deref() == Ok("1") {
        panic!("{test}: {reason}; NUCLEUS_REQUIRE_ALL=1 forbids skipping");
    }
    // Straight to the descriptor: libtest captures eprintln! output.
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test}: {reason}");
    None
}

/// uid and gid of `name` from /etc/passwd.
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            [n, _, uid, gid, ..] if *n == name => Some((uid.parse().ok()?, gid.parse().ok()?)),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_interpreter_detection() {
        assert_eq!(elf_has_interpreter(b"#!/bin/sh\n"), None);
        let me = fs::read("/proc/self/exe").unwrap();
        assert!(elf_has_interpreter(&me).is_some());
    }
}
