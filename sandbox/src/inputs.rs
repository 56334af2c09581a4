//! Agent inputs placed in the new root before pivot_root: a copied
//! context or workspace tree, and the secrets.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use protocol::{AbsPath, Secret, Sha256};
use sha2::{Digest, Sha256 as Hasher};
use zeroize::Zeroizing;

use crate::error::{Context, Error};
use crate::{sys, tree};

/// What the executor hands the sandbox beside the plan.
#[derive(Debug, Default)]
pub struct Inputs {
    /// One readable descriptor per `plan.secrets` entry, in order.
    pub secrets: Vec<OwnedFd>,
    /// Host paths as detached mount trees made by a privileged executor
    /// before the fork; empty when the sandbox opens them itself.
    pub host_trees: Vec<(AbsPath, OwnedFd)>,
    /// The workload's stdin, stdout and stderr when they are not the
    /// executor's own (a helper passes on its caller's); empty otherwise.
    pub stdio: Vec<OwnedFd>,
    /// Where a copy-in-out workspace goes back when the executor is not
    /// its owner; None: the executor opens the workspace path itself.
    pub sync_back: Option<SyncBack>,
    /// The violations file: where an `EgressReport::File` report and
    /// `SeccompMode::Report`'s denials are written.
    pub violations: Option<OwnedFd>,
    /// Where trace mode's record is written.
    pub seccomp_trace: Option<OwnedFd>,
}

/// A copy-in-out workspace's way home for a privileged executor: the
/// owner's own descriptor for the directory, written only with the
/// owner's ids.
#[derive(Debug)]
pub struct SyncBack {
    pub dir: OwnedFd,
    pub uid: u32,
    pub gid: u32,
}

/// Fills the (freshly mounted, empty) directory `target` with a copy of
/// `source`, then checks it against `verify`. Progress goes to stderr when
/// it is a terminal and the copy takes a while.
pub fn copy_tree(
    source: BorrowedFd<'_>,
    target: BorrowedFd<'_>,
    flag: &str,
    verify: Option<Sha256>,
) -> Result<(), Error> {
    let readable = sys::open_at(source, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .step(|| format!("{flag}: opening the source"))?;
    let mut meter = Meter::new(flag);
    // The sandbox's root may read the caller's own unreadable files (it
    // holds CAP_DAC_OVERRIDE over them): copy as the caller would.
    let copied = sys::without_dac_override(|| {
        tree::copy(readable.as_fd(), target, &mut |p| meter.update(p))
    })
    .step(|| format!("{flag}: lowering capabilities for the copy"))?;
    let done = copied.map_err(|e| Error::Setup {
        step: format!("{flag}: copying {}", e.path),
        source: e.source,
    })?;
    meter.finish(done);
    if let Some(expected) = verify {
        let actual = tree::manifest_digest(target).map_err(|e| Error::Setup {
            step: format!("{flag}: hashing the copy at {}", e.path),
            source: e.source,
        })?;
        if actual != expected {
            return Err(Error::Setup {
                step: format!("{flag}: the copy does not match the manifest taken before launch ({expected}); the source changed while it was copied"),
                source: io::Error::from_raw_os_error(libc::EBADMSG),
            });
        }
    }
    Ok(())
}

/// Writes each secret into `dir` (a fresh tmpfs), mode 0400, owned by the
/// workload, after checking its size and hash against the plan. Buffers
/// are zeroed when dropped.
pub fn place_secrets(
    dir: BorrowedFd<'_>,
    secrets: &[Secret],
    fds: Vec<OwnedFd>,
    uid: u32,
    gid: u32,
) -> Result<(), Error> {
    if fds.len() != secrets.len() {
        return Err(Error::Setup {
            step: format!("{} secrets planned, {} given", secrets.len(), fds.len()),
            source: io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    for (secret, fd) in secrets.iter().zip(fds) {
        let step = || format!("--secret {}", secret.name);
        let limit = secret.size.saturating_add(1);
        // Sized once, from the plan's claim bounded by the file itself (a
        // plan can come from another process), so the buffer never grows:
        // a reallocation would leave a copy of the secret behind unzeroed.
        let on_disk = sys::fstat(fd.as_fd()).step(step)?.st_size as u64;
        let room = usize::try_from(limit.min(on_disk.saturating_add(1))).unwrap_or(0);
        let mut contents = Zeroizing::new(Vec::with_capacity(room));
        std::fs::File::from(fd)
            .take(limit)
            .read_to_end(&mut contents)
            .step(step)?;
        let digest: [u8; 32] = Hasher::digest(contents.as_slice()).into();
        if contents.len() as u64 != secret.size || Sha256(digest) != secret.sha256 {
            return Err(Error::Setup {
                step: format!(
                    "--secret {}: the source changed after it was read",
                    secret.name
                ),
                source: io::Error::from_raw_os_error(libc::EBADMSG),
            });
        }
        let name = std::ffi::CString::new(secret.name.as_str())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
            .step(step)?;
        let file = sys::open_at(
            dir,
            &name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o400,
        )
        .step(step)?;
        sys::fchown(file.as_fd(), uid, gid).step(step)?;
        std::fs::File::from(file).write_all(&contents).step(step)?;
    }
    let dir_fd = sys::open_at(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .step(|| "opening the secrets directory".into())?;
    sys::fchown(dir_fd.as_fd(), uid, gid).step(|| "owning the secrets directory".into())?;
    sys::fchmod(dir_fd.as_fd(), 0o500).step(|| "protecting the secrets directory".into())
}

/// A progress line on a terminal, only for copies that take a while.
struct Meter {
    flag: String,
    start: Instant,
    last: Option<Instant>,
    tty: bool,
}

const QUIET_FOR: Duration = Duration::from_millis(300);
const EVERY: Duration = Duration::from_millis(100);

impl Meter {
    fn new(flag: &str) -> Self {
        Meter {
            flag: flag.to_owned(),
            start: Instant::now(),
            last: None,
            tty: sys::isatty(2),
        }
    }

    fn update(&mut self, p: tree::Progress) {
        if !self.tty || !p.files.is_multiple_of(64) {
            return;
        }
        let now = Instant::now();
        if now - self.start < QUIET_FOR || self.last.is_some_and(|l| now - l < EVERY) {
            return;
        }
        self.last = Some(now);
        self.print(p);
    }

    fn print(&self, p: tree::Progress) {
        let mib = p.bytes as f64 / 1048576.0;
        eprint!(
            "\rnucleus: {}: copied {} files, {mib:.1} MiB",
            self.flag, p.files
        );
    }

    /// Completes the line, if one was shown.
    fn finish(&self, done: tree::Progress) {
        if self.last.is_some() {
            self.print(done);
            eprintln!();
        }
    }
}
