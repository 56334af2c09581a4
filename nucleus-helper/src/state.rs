//! The helper's record of each running sandbox: one file per sandbox in
//! `/run/nucleus/sandboxes` (the unit's `RuntimeDirectory=`, root-only),
//! ending in an HMAC-SHA256 under a key only root can read
//! (`/var/lib/nucleus/state.key`, the unit's `StateDirectory=`). The
//! helper signals processes and removes cgroups named in these files, so a
//! file it did not write, or one changed since, is refused.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use protocol::{PlanDigest, SandboxId, SandboxInfo, SandboxName};

use crate::{hmac, sys};

pub const DIR: &str = "/run/nucleus/sandboxes";
pub const KEY: &str = "/var/lib/nucleus/state.key";
const KEY_BYTES: usize = 32;
/// Sandbox cgroups live below here; a record naming anything else is refused.
const CGROUP_ROOT: &str = "/sys/fs/cgroup/";

/// One process, named so that a recycled pid is not mistaken for it: the
/// pid and its start time (clock ticks after boot, from /proc/PID/stat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcId {
    pub pid: libc::pid_t,
    pub start: u64,
}

impl ProcId {
    pub fn of(pid: libc::pid_t) -> io::Result<ProcId> {
        Ok(ProcId {
            pid,
            start: start_time(pid)?,
        })
    }

    /// A pidfd for exactly this process, or None if it is gone. The start
    /// time is read after the pidfd pins the pid, so a reused pid fails.
    pub fn open(&self) -> Option<OwnedFd> {
        let fd = sys::pidfd_open(self.pid).ok()?;
        (start_time(self.pid).ok()? == self.start && sys::pidfd_alive(fd.as_fd())).then_some(fd)
    }
}

fn start_time(pid: libc::pid_t) -> io::Result<u64> {
    sandbox::live_start_time(pid)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("process {pid} is gone")))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: SandboxId,
    pub uid: u32,
    pub name: Option<SandboxName>,
    pub digest: PlanDigest,
    /// Seconds since the Unix epoch.
    pub started: u64,
    /// The helper instance that supervises the sandbox.
    pub supervisor: ProcId,
    /// The sandbox's first process (its PID 1).
    pub workload: ProcId,
    pub cgroup: Option<PathBuf>,
}

impl Record {
    pub fn info(&self) -> SandboxInfo {
        SandboxInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            uid: self.uid,
            digest: self.digest,
            started: self.started,
        }
    }

    fn encode(&self) -> String {
        let proc = |p: ProcId| format!("{}:{}", p.pid, p.start);
        format!(
            "id={}\nuid={}\nname={}\ndigest={}\nstarted={}\nsupervisor={}\nworkload={}\ncgroup={}\n",
            self.id,
            self.uid,
            self.name.as_ref().map_or("", |n| n.as_str()),
            self.digest,
            self.started,
            proc(self.supervisor),
            proc(self.workload),
            self.cgroup.as_ref().map_or(String::new(), |p| p.display().to_string()),
        )
    }

    /// The exact inverse of `encode`: fields in order, nothing else.
    fn decode(text: &str) -> Option<Record> {
        let mut lines = text.lines();
        let mut field = |key: &str| lines.next()?.strip_prefix(key)?.strip_prefix('=');
        let id = SandboxId::try_from(field("id")?).ok()?;
        let uid = field("uid")?.parse().ok()?;
        let name = match field("name")? {
            "" => None,
            n => Some(SandboxName::try_from(n).ok()?),
        };
        let digest = PlanDigest(unhex(field("digest")?)?);
        let started = field("started")?.parse().ok()?;
        let proc = |s: &str| {
            let (pid, start) = s.split_once(':')?;
            Some(ProcId {
                pid: pid.parse().ok().filter(|p| *p > 0)?,
                start: start.parse().ok()?,
            })
        };
        let supervisor = proc(field("supervisor")?)?;
        let workload = proc(field("workload")?)?;
        let cgroup = match field("cgroup")? {
            "" => None,
            p => Some(cgroup_path(p)?),
        };
        lines.next().is_none().then_some(Record {
            id,
            uid,
            name,
            digest,
            started,
            supervisor,
            workload,
            cgroup,
        })
    }
}

/// A sandbox cgroup path: absolute, below /sys/fs/cgroup, no `..`.
fn cgroup_path(p: &str) -> Option<PathBuf> {
    let path = PathBuf::from(p);
    let plain = path
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    (p.starts_with(CGROUP_ROOT) && plain).then_some(path)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Why a record could not be used.
#[derive(Debug)]
pub enum StateError {
    NotFound,
    /// The HMAC does not match, or the body is not one the helper writes.
    Tampered,
    Io(io::Error),
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::NotFound => f.write_str("no such sandbox"),
            StateError::Tampered => f.write_str("its state file fails its HMAC check"),
            StateError::Io(e) => write!(f, "reading its state file: {e}"),
        }
    }
}

pub struct Store {
    dir: PathBuf,
    key: [u8; KEY_BYTES],
}

impl Store {
    /// The state directory and its key (made on first use).
    pub fn open() -> Result<Store, String> {
        let dir = PathBuf::from(DIR);
        if !dir.is_dir() {
            return Err(format!(
                "the state directory {DIR} is missing (the unit's RuntimeDirectory= makes it)"
            ));
        }
        let key = load_key(Path::new(KEY)).map_err(|e| format!("the state key {KEY}: {e}"))?;
        Ok(Store { dir, key })
    }

    fn path(&self, id: &SandboxId) -> PathBuf {
        self.dir.join(id.as_str())
    }

    /// Written whole to a temporary name, then renamed: a reader sees the
    /// old file or the new one, never half of one.
    pub fn save(&self, record: &Record) -> io::Result<()> {
        let body = record.encode();
        let tag = hmac::hmac_sha256(&self.key, body.as_bytes());
        let tmp = self.dir.join(format!(".{}.tmp", record.id));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        file.write_all(format!("{body}hmac={}\n", hex(&tag)).as_bytes())?;
        fs::rename(&tmp, self.path(&record.id))
    }

    pub fn load(&self, id: &SandboxId) -> Result<Record, StateError> {
        let text = match fs::read_to_string(self.path(id)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StateError::NotFound),
            Err(e) => return Err(StateError::Io(e)),
        };
        let (body, tag) = text
            .strip_suffix('\n')
            .and_then(|t| t.rsplit_once("\nhmac="))
            .ok_or(StateError::Tampered)?;
        let body = format!("{body}\n");
        let tag: [u8; 32] = unhex(tag).ok_or(StateError::Tampered)?;
        if !hmac::equal(&hmac::hmac_sha256(&self.key, body.as_bytes()), &tag) {
            return Err(StateError::Tampered);
        }
        Record::decode(&body)
            .filter(|r| r.id == *id)
            .ok_or(StateError::Tampered)
    }

    pub fn remove(&self, id: &SandboxId) -> io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves a record that failed its check out of the way (the name no
    /// longer parses as an id), for an administrator to inspect; says where.
    pub fn quarantine(&self, id: &SandboxId) -> String {
        let aside = self.dir.join(format!("{id}.tampered"));
        match fs::rename(self.path(id), &aside) {
            Ok(()) => format!("moved to {}", aside.display()),
            Err(e) => format!("could not move it aside: {e}"),
        }
    }

    /// Every record's id; other names (temporary files) are skipped.
    pub fn ids(&self) -> io::Result<Vec<SandboxId>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            if let Some(id) = entry?
                .file_name()
                .to_str()
                .and_then(|n| SandboxId::try_from(n).ok())
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// Reads the key, or makes it: written under a private name, then linked
/// into place, so two helpers starting at once agree on one key.
fn load_key(path: &Path) -> io::Result<[u8; KEY_BYTES]> {
    let open = || {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
    };
    let mut file = match open() {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let tmp = path.with_extension(format!("tmp{}", sys::getpid()));
            let mut new = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)?;
            let linked = new
                .write_all(&sys::random::<KEY_BYTES>()?)
                .and_then(|()| new.sync_all())
                .and_then(|()| match fs::hard_link(&tmp, path) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
                    _ => Ok(()),
                });
            let _ = fs::remove_file(&tmp);
            linked?;
            open()?
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if meta.uid() != 0 || meta.mode() & 0o077 != 0 || meta.len() != KEY_BYTES as u64 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("must be {KEY_BYTES} bytes, owned by root, mode 0600"),
        ));
    }
    let mut key = [0u8; KEY_BYTES];
    file.read_exact(&mut key)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            id: SandboxId::from_bytes([1, 2, 3, 4, 5, 6, 7, 8]),
            uid: 1000,
            name: Some(SandboxName::try_from("agent-1").unwrap()),
            digest: PlanDigest([7; 32]),
            started: 1_700_000_000,
            supervisor: ProcId { pid: 10, start: 99 },
            workload: ProcId {
                pid: 11,
                start: 100,
            },
            cgroup: Some(PathBuf::from(
                "/sys/fs/cgroup/system.slice/nucleus-helper.service/user-1000/0102030405060708",
            )),
        }
    }

    #[test]
    fn records_round_trip() {
        let r = record();
        assert_eq!(Record::decode(&r.encode()), Some(r.clone()));
        let bare = Record {
            name: None,
            cgroup: None,
            ..r
        };
        assert_eq!(Record::decode(&bare.encode()), Some(bare));
    }

    #[test]
    fn odd_records_are_refused() {
        let good = record().encode();
        for bad in [
            good.replace("cgroup=/sys/fs/cgroup/", "cgroup=/etc/"),
            good.replace("user-1000/0102030405060708", "../../../etc"),
            good.replace("uid=1000", "uid=-1"),
            good.replace("workload=11", "workload=0"),
            format!("{good}extra=1\n"),
            good.replace("name=agent-1\n", ""),
        ] {
            assert_eq!(Record::decode(&bad), None, "{bad}");
        }
    }

    #[test]
    fn a_changed_byte_fails_the_hmac() {
        let dir = std::env::temp_dir().join(format!("nucleus-state-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let store = Store {
            dir: dir.clone(),
            key: [9; KEY_BYTES],
        };
        let r = record();
        store.save(&r).unwrap();
        assert_eq!(store.load(&r.id).unwrap(), r);
        assert_eq!(store.ids().unwrap(), vec![r.id.clone()]);
        let path = dir.join(r.id.as_str());
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("uid=1000", "uid=1001")).unwrap();
        assert!(matches!(store.load(&r.id), Err(StateError::Tampered)));
        let other = Store {
            dir: dir.clone(),
            key: [8; KEY_BYTES],
        };
        fs::write(&path, text).unwrap();
        assert!(matches!(other.load(&r.id), Err(StateError::Tampered)));
        store.remove(&r.id).unwrap();
        assert!(matches!(store.load(&r.id), Err(StateError::NotFound)));
        fs::remove_dir_all(dir).unwrap();
    }
}
