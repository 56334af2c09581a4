//! Running one verified request: the checks only the helper can make
//! (whose ids, which features, polkit), the detached trees, the cgroup,
//! then the sandbox's life with the client attached.
//!
//! The privileged operations, each safe for an untrusted caller because:
//! - writing the user namespace maps: only ever the caller's own uid and
//!   gid and their /etc/subuid and /etc/subgid ranges (checked below), so
//!   root in the sandbox is the caller outside;
//! - signalling and cleaning up after sandboxes (see `manage`): only
//!   through HMAC-checked records the helper wrote;
//! - detaching mount trees: only of descriptors the caller opened for
//!   reading (O_PATH refused), so nothing they could not read gets in;
//! - creating a cgroup and writing limits: only below the helper's own
//!   delegated subtree, and limits only restrict;
//! - syncing a copy-in-out workspace back: through the caller's own
//!   descriptor, by a thread holding only the caller's ids;
//! - attaching a sandbox to a bridge (`--network bridge`, after polkit's
//!   org.nucleus.network.bridge): for an unprivileged caller only the
//!   default bridge and subnet (ours or new, never overlapping a host
//!   route), a veth into the sandbox's own namespace, an address leased
//!   from the subnet, and NAT for that subnet only;
//! - publishing host ports (after org.nucleus.network.publish-port, and
//!   ...publish-privileged-port below 1024): each port is bound first, so
//!   one in use by anyone is refused, and forwarded only to the sandbox's
//!   own leased address;
//! - the egress report: written only to the caller's own descriptor;
//! - everything else (mounts, pivot_root, seccomp, ...) happens inside the
//!   new user namespace, with no more privilege than the caller has.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use protocol::{
    subids, Envelope, ErrorCode, IdMap, KernelBridge, Limits, Message, NatBackend, NetworkMode,
    Plan, PlanDigest, PublishedPort, SandboxId, SeccompMode, WorkspaceMode,
};
use sandbox::{Control, Hooks};

use crate::audit::{self, Who};
use crate::cgroup::SandboxCgroup;
use crate::conn::Conn;
use crate::peer::Peer;
use crate::serve::{refuse, Descriptors, Refusal, Request};
use crate::state::{ProcId, Record, Store};
use crate::{ceilings, cgroup, detach, polkit, sys};

fn audit(peer: &Peer, digest: &PlanDigest, decision: &str, detail: &str) {
    audit::record(
        Who::Caller(peer),
        "launch",
        &format!("plan=sha256:{digest}"),
        decision,
        detail,
    );
}

/// A sandbox runs as its caller: its maps may name outside only the
/// caller's own uid and gid, and ranges /etc/subuid and /etc/subgid give
/// the caller (root may map anything). The files are the administrator's,
/// read here again: the front end's reading of them proves nothing.
fn check_identity(plan: &Plan, peer: &Peer) -> Result<(), Refusal> {
    if peer.uid == 0 {
        return Ok(());
    }
    let own = |m: &IdMap, id: u32| m.outside() == id && m.count() == 1;
    let subordinate = |file: &str, maps: &[IdMap], id: u32| -> Result<bool, Refusal> {
        let others: Vec<&IdMap> = maps.iter().filter(|m| !own(m, id)).collect();
        if others.is_empty() {
            return Ok(true);
        }
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map_err(|e| refuse(ErrorCode::Internal, format!("reading {path}: {e}")))
        };
        let passwd = read("/etc/passwd")?;
        let name = subids::user_name(&passwd, peer.uid).unwrap_or_default();
        let ranges = match read(file) {
            Ok(text) => subids::ranges(&text, name, peer.uid),
            Err(_) => Vec::new(),
        };
        Ok(others
            .iter()
            .all(|m| subids::covered(&ranges, m.outside(), m.count())))
    };
    if !subordinate("/etc/subuid", &plan.ids.uid_map, peer.uid)?
        || !subordinate("/etc/subgid", &plan.ids.gid_map, peer.gid)?
    {
        return Err(refuse(
            ErrorCode::Unauthorized,
            "the plan maps user or group ids that are neither the caller's nor in the caller's /etc/subuid and /etc/subgid ranges",
        ));
    }
    Ok(())
}

/// The bridge's name and subnet come from the caller, and making a bridge
/// changes the host's network (routes, NAT): an unprivileged caller gets
/// only the default one, which cannot shadow a bridge or a route that is
/// not nucleus's unless an administrator put it there. The userspace NATs
/// run as the caller, never here: the helper would run them as root.
/// Trace mode lets every system call through and hands the sandbox's
/// seccomp listener to its executor: not something to do as root for
/// another user.
fn check_seccomp(plan: &Plan) -> Result<(), Refusal> {
    match plan.security.seccomp_mode {
        // The report's listener answers denials with the plan's own
        // errno, never "continue": nothing gets through that the
        // program denies.
        SeccompMode::Enforce | SeccompMode::Report => Ok(()),
        SeccompMode::Trace => Err(refuse(
            ErrorCode::BadRequest,
            "--seccomp-mode trace runs in-process only, not through the helper",
        )),
    }
}

fn check_bridge(plan: &Plan, peer: &Peer) -> Result<(), Refusal> {
    let NetworkMode::Bridge(bridge) = &plan.network else {
        return Ok(());
    };
    match &bridge.backend {
        NatBackend::Kernel(kernel) if peer.uid != 0 && !kernel.is_default() => Err(refuse(
            ErrorCode::Unauthorized,
            format!(
                "through the helper, --network bridge uses only {} on {}/{}; other bridges and subnets need root",
                KernelBridge::DEFAULT_NAME,
                KernelBridge::DEFAULT_SUBNET.0,
                KernelBridge::DEFAULT_SUBNET.1
            ),
        )),
        NatBackend::Kernel(_) => Ok(()),
        NatBackend::Pasta | NatBackend::Slirp4netns => Err(refuse(
            ErrorCode::BadRequest,
            "a userspace NAT runs as the caller, not through the helper: use --rootless, or --nat-backend kernel",
        )),
    }
}

/// A copy-in-out workspace goes back through the caller's own descriptor
/// (the last host path), written with the caller's ids only.
fn sync_back(
    plan: &Plan,
    peer: &Peer,
    host_fds: &[OwnedFd],
) -> Result<Option<sandbox::SyncBack>, Refusal> {
    let copies = matches!(
        plan.workspace.as_ref().map(|w| w.mode),
        Some(WorkspaceMode::CopyInOut { .. })
    );
    let Some(fd) = host_fds.last().filter(|_| copies) else {
        return Ok(None);
    };
    let dir = fd.try_clone().map_err(|e| {
        refuse(
            ErrorCode::Internal,
            format!("keeping the workspace descriptor: {e}"),
        )
    })?;
    Ok(Some(sandbox::SyncBack {
        dir,
        uid: peer.uid,
        gid: peer.gid,
    }))
}

/// The polkit action every launch needs; features add their own.
const RUN: &str = "org.nucleus.run";
/// Limits above the administrator's ceilings.
const EXCEED: &str = "org.nucleus.limits.exceed";
/// The host's network namespace.
const HOST_NETWORK: &str = "org.nucleus.network.host";
/// An address on a host bridge.
const BRIDGE_NETWORK: &str = "org.nucleus.network.bridge";
/// A host port forwarded to the sandbox.
const PUBLISH_PORT: &str = "org.nucleus.network.publish-port";
/// A host port below 1024, which only root may bind otherwise.
const PUBLISH_PRIVILEGED_PORT: &str = "org.nucleus.network.publish-privileged-port";

/// Detached trees of the caller's descriptors, keyed by plan path.
fn detach(
    plan: &Plan,
    mount_ns: &OwnedFd,
    fds: Vec<OwnedFd>,
) -> Result<Vec<(protocol::AbsPath, OwnedFd)>, Refusal> {
    let paths = plan.host_paths();
    for ((path, _), fd) in paths.iter().zip(&fds) {
        if sys::is_o_path(fd.as_fd()) {
            return Err(refuse(
                ErrorCode::BadRequest,
                format!("descriptor for {path} is O_PATH; open it for reading"),
            ));
        }
    }
    if fds.is_empty() {
        return Ok(Vec::new());
    }
    let trees = detach::detach_in_callers_namespace(mount_ns, &fds)
        .map_err(|e| refuse(ErrorCode::SetupFailed, e))?;
    Ok(paths
        .into_iter()
        .map(|(p, _)| p.clone())
        .zip(trees)
        .collect())
}

struct HelperHooks<'a> {
    conn: &'a mut Conn,
    peer: &'a Peer,
    plan: &'a Plan,
    store: &'a Store,
    id: SandboxId,
    /// Set once the record is on disk, so it is removed at the end.
    recorded: bool,
    digest: PlanDigest,
    cgroup: Option<SandboxCgroup>,
    refusal: Option<Refusal>,
}

impl HelperHooks<'_> {
    /// The state record that `nucleus ps` and `nucleus stop` read, and
    /// the next helper reconciles if this one dies.
    fn record(&mut self, pid: libc::pid_t) -> Result<(), Refusal> {
        let failed = |e: std::io::Error| {
            refuse(
                ErrorCode::SetupFailed,
                format!("recording the sandbox: {e}"),
            )
        };
        let record = Record {
            id: self.id.clone(),
            uid: self.peer.uid,
            name: self.plan.name.clone(),
            digest: self.digest,
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            supervisor: ProcId::of(sys::getpid()).map_err(failed)?,
            workload: ProcId::of(pid).map_err(failed)?,
            cgroup: self.cgroup.as_ref().map(|c| c.path().to_owned()),
        };
        self.store.save(&record).map_err(failed)?;
        self.recorded = true;
        Ok(())
    }
}

impl Hooks for HelperHooks<'_> {
    /// Into the cgroup made before the fork, then on record.
    fn place(&mut self, pid: libc::pid_t) -> Result<(), String> {
        let placed = match &self.cgroup {
            Some(cgroup) => cgroup.add(pid).map_err(|e| {
                refuse(
                    ErrorCode::SetupFailed,
                    format!("moving the sandbox into its cgroup: {e}"),
                )
            }),
            None => Ok(()),
        }
        .and_then(|()| self.record(pid));
        placed.map_err(|r| {
            let text = r.message.clone();
            self.refusal = Some(r);
            text
        })
    }

    fn started(&mut self) {
        let _ = self.conn.write(&Envelope::new(Message::Started {
            id: self.id.clone(),
            digest: self.digest,
        }));
    }

    fn watched(&self) -> Option<BorrowedFd<'_>> {
        Some(self.conn.socket())
    }

    /// The client speaks while its sandbox runs: signals to forward; a
    /// closed connection (or nonsense) kills the sandbox.
    fn on_watched(&mut self) -> Control {
        match self.conn.read() {
            Ok(Some((
                Envelope {
                    message: Message::Signal(sig),
                    ..
                },
                _,
            ))) if [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT]
                .contains(&i32::from(sig)) =>
            {
                Control::Signal(i32::from(sig))
            }
            Ok(Some((
                Envelope {
                    message: Message::Resize { rows, cols },
                    ..
                },
                _,
            ))) => Control::Resize(rows, cols),
            _ => Control::Kill,
        }
    }
}

/// Everything decided before the fork.
struct Prepared {
    inputs: sandbox::Inputs,
    cgroup: Option<SandboxCgroup>,
}

/// The limits after the administrator's ceilings (missing limits take
/// them), and the polkit actions the launch needs (excess needs its own).
/// No config file means no ceilings.
fn limits_and_actions(plan: &Plan, peer: &Peer) -> Result<(Limits, Vec<&'static str>), Refusal> {
    let config = match std::fs::read_to_string(ceilings::PATH) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(refuse(
                ErrorCode::Internal,
                format!("reading {}: {e}", ceilings::PATH),
            ))
        }
    };
    let ceilings =
        ceilings::parse(&config, peer.uid).map_err(|e| refuse(ErrorCode::Internal, e))?;
    let (limits, exceeds) = ceilings::apply(&plan.limits, &ceilings);
    let mut actions = vec![RUN];
    if exceeds {
        actions.push(EXCEED);
    }
    match &plan.network {
        NetworkMode::None => {}
        NetworkMode::Host => actions.push(HOST_NETWORK),
        NetworkMode::Bridge(bridge) => {
            actions.push(BRIDGE_NETWORK);
            if !bridge.publish.is_empty() {
                actions.push(PUBLISH_PORT);
            }
            if bridge.publish.iter().any(PublishedPort::privileged) {
                actions.push(PUBLISH_PRIVILEGED_PORT);
            }
        }
    }
    Ok((limits, actions))
}

/// polkit's question, asked in a child process; root callers skip it.
fn ask_polkit(
    plan: &Plan,
    peer: &Peer,
    digest: &PlanDigest,
    actions: &[&str],
) -> Result<Option<polkit::Pending>, Refusal> {
    if peer.uid == 0 {
        return Ok(None);
    }
    let digest = format!("sha256:{digest}");
    let name = plan.name.as_ref().map_or("", |n| n.as_str());
    let ports = match &plan.network {
        NetworkMode::Bridge(bridge) => bridge
            .publish
            .iter()
            .map(PublishedPort::to_string)
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    };
    let details: HashMap<&str, &str> = [
        ("sandbox", name),
        ("plan_digest", digest.as_str()),
        (
            "network_mode",
            match plan.network {
                NetworkMode::None => "none",
                NetworkMode::Host => "host",
                NetworkMode::Bridge(_) => "bridge",
            },
        ),
        ("published_ports", ports.as_str()),
    ]
    .into();
    polkit::ask(peer, actions, &details)
        .map(Some)
        .map_err(|e| refuse(ErrorCode::Internal, format!("asking polkit: {e}")))
}

/// polkit's answer, and the caller still there: polkit was asked about
/// the pid; the pidfd says the caller held that pid for the whole question
/// (a dead caller's pid may be reused).
fn authorized(pending: polkit::Pending, peer: &Peer) -> Result<(), Refusal> {
    let denied = |message: String| refuse(ErrorCode::Unauthorized, message);
    match pending.answer() {
        polkit::Answer::Allowed if sys::pidfd_alive(peer.pidfd.as_fd()) => Ok(()),
        polkit::Answer::Allowed => Err(denied("the caller exited during authorization".to_owned())),
        polkit::Answer::Denied(action) => Err(denied(format!(
            "polkit does not allow {action} for uid {}; an administrator can grant it",
            peer.uid
        ))),
        polkit::Answer::Failed(e) => Err(denied(format!("cannot ask polkit: {e}"))),
    }
}

/// The checks, polkit, the caller's mounts and the cgroup. polkit's
/// answer takes a while, so the caller's trees are detached and the
/// cgroup made while it is asked; both are undone if the answer is no,
/// and nothing of the sandbox exists before it is yes.
fn prepare(
    plan: &Plan,
    peer: &Peer,
    id: &SandboxId,
    digest: &PlanDigest,
    fds: Descriptors,
) -> Result<Prepared, Refusal> {
    check_identity(plan, peer)?;
    check_bridge(plan, peer)?;
    check_seccomp(plan)?;
    let (limits, actions) = limits_and_actions(plan, peer)?;
    let pending = ask_polkit(plan, peer, digest, &actions)?;
    let sync_back = sync_back(plan, peer, &fds.host_fds)?;
    let inputs = sandbox::Inputs {
        sync_back,
        secrets: fds.secret_fds,
        host_trees: detach(plan, &fds.mount_ns, fds.host_fds)?,
        stdio: fds.stdio,
        violations: fds.violations,
        seccomp_trace: None,
    };
    // Made before the fork: cgroup v2 enables controllers only over
    // cgroups without processes, and the sandbox is born in ours.
    let cgroup = if limits.wants_cgroup() {
        let made = SandboxCgroup::create(Path::new(cgroup::ROOT), peer.uid, id, &limits);
        Some(made.map_err(|e| {
            refuse(
                ErrorCode::SetupFailed,
                format!("creating the sandbox's cgroup: {e}"),
            )
        })?)
    } else {
        None
    };
    if let Some(pending) = pending {
        if let Err(r) = authorized(pending, peer) {
            if let Some(cgroup) = cgroup {
                for e in cgroup.remove() {
                    audit(peer, digest, "cleanup-failed", &e.to_string());
                }
            }
            return Err(r);
        }
    }
    Ok(Prepared { inputs, cgroup })
}

pub fn launch(conn: &mut Conn, peer: &Peer, store: &Store, req: Request) -> Result<(), Refusal> {
    let Request {
        plan: verified,
        fds,
    } = req;
    let plan = verified.plan();
    let digest = verified.digest();
    let id = match sys::random() {
        Ok(bytes) => SandboxId::from_bytes(bytes),
        Err(e) => {
            return Err(refuse(
                ErrorCode::Internal,
                format!("naming the sandbox: {e}"),
            ))
        }
    };
    let Prepared { inputs, cgroup } = match prepare(plan, peer, &id, &digest, fds) {
        Ok(prepared) => prepared,
        Err(r) => {
            audit(peer, &digest, "denied", &r.message);
            return Err(r);
        }
    };
    let mut hooks = HelperHooks {
        conn,
        peer,
        plan,
        store,
        id,
        recorded: false,
        digest,
        cgroup,
        refusal: None,
    };
    let result = sandbox::run(plan, inputs, &mut hooks);
    let oom = hooks.cgroup.as_ref().is_some_and(SandboxCgroup::oom_killed);
    let mut cleanup: Vec<String> = hooks
        .cgroup
        .take()
        .map(|c| c.remove().iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    let refusal = hooks.refusal.take();
    if hooks.recorded {
        if let Err(e) = store.remove(&hooks.id) {
            cleanup.push(format!("removing the sandbox's record: {e}"));
        }
    }
    for failure in &cleanup {
        audit(peer, &digest, "cleanup-failed", failure);
    }
    match result {
        Ok(outcome) => {
            audit(
                peer,
                &digest,
                "allowed",
                &format!(
                    "exit {:?}{}",
                    outcome.status,
                    if oom { ", oom-killed" } else { "" }
                ),
            );
            if oom {
                let _ = conn.write(&Envelope::new(Message::OutOfMemory));
            }
            if outcome.timed_out {
                let _ = conn.write(&Envelope::new(Message::TimedOut));
            }
            let _ = conn.write(&Envelope::new(Message::Exited(outcome.status)));
            Ok(())
        }
        Err(e) => {
            let r = refusal.unwrap_or_else(|| refuse(ErrorCode::SetupFailed, e.to_string()));
            audit(peer, &digest, "denied", &r.message);
            Err(r)
        }
    }
}
