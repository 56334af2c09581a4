//! One connection from start to end: handshake, then one request: a
//! launch checked from every angle (then the sandbox's life), or a
//! management call. Every refusal is a typed `Error` message with a
//! stable code, then the connection closes.

use std::os::fd::{AsFd, OwnedFd};

use protocol::{
    Envelope, ErrorCode, HostKind, Message, Plan, PlanDigest, Verified, WireError, PROTOCOL_VERSION,
};

use crate::conn::{Conn, ConnError};
use crate::peer::Peer;
use crate::state::Store;
use crate::{launch, manage, sys};

/// A refusal: what the client is told.
#[derive(Debug)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

pub fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

impl From<ConnError> for Refusal {
    fn from(e: ConnError) -> Self {
        let code = match &e {
            ConnError::Wire(WireError::Version(_)) => ErrorCode::Unsupported,
            _ => ErrorCode::BadRequest,
        };
        refuse(code, e.to_string())
    }
}

/// A launch request that passed every check the helper can make alone.
#[derive(Debug)]
pub struct Request {
    pub plan: Verified,
    pub fds: Descriptors,
}

/// The descriptors that came with a launch request.
#[derive(Debug)]
pub struct Descriptors {
    /// One per `Plan::host_paths()` entry, in order, type-checked.
    pub host_fds: Vec<OwnedFd>,
    /// One per secret, in order: regular files.
    pub secret_fds: Vec<OwnedFd>,
    /// The caller's stdin, stdout and stderr.
    pub stdio: Vec<OwnedFd>,
    /// The violations file (egress report, seccomp denials), opened for
    /// writing by the caller.
    pub violations: Option<OwnedFd>,
    /// The caller's mount namespace, where `host_fds` live.
    pub mount_ns: OwnedFd,
}

/// Runs the conversation; returns only when the connection is done.
/// Without a state store nothing can be launched or managed (a sandbox
/// nobody could list or clean up after a crash is not started).
pub fn serve(conn: &mut Conn, peer: &Peer, store: Result<Store, String>) {
    let outcome = handshake(conn).and_then(|()| {
        let (message, fds) = read_request(conn)?;
        // The request is checked in full before the store is needed.
        let store = || store.map_err(|e| refuse(ErrorCode::Internal, e));
        match message {
            Message::Launch { plan, digest } => {
                let req = check_launch(&plan, &digest, fds)?;
                launch::launch(conn, peer, &store()?, req)
            }
            Message::List if fds.is_empty() => manage::list(conn, peer, &store()?),
            Message::Stop { id, signal } if fds.is_empty() => {
                manage::stop(conn, peer, &store()?, &id, signal)
            }
            _ => Err(refuse(
                ErrorCode::BadRequest,
                "expected Launch, List or Stop (only Launch carries descriptors)",
            )),
        }
    });
    if let Err(r) = outcome {
        // The client may be gone already; nothing else to do then.
        let _ = conn.write(&Envelope::new(Message::Error {
            code: r.code,
            message: r.message,
        }));
    }
}

fn handshake(conn: &mut Conn) -> Result<(), Refusal> {
    match conn.read()? {
        Some((
            Envelope {
                message: Message::Hello { version },
                ..
            },
            fds,
        )) if fds.is_empty() => {
            if version != PROTOCOL_VERSION {
                return Err(refuse(
                    ErrorCode::Unsupported,
                    format!("protocol version {version} is not supported; this helper speaks {PROTOCOL_VERSION}"),
                ));
            }
            conn.write(&Envelope::new(Message::Welcome {
                version: PROTOCOL_VERSION,
            }))
            .map_err(|e| refuse(ErrorCode::Internal, e.to_string()))
        }
        Some(_) => Err(refuse(
            ErrorCode::BadRequest,
            "the first message must be Hello, without descriptors",
        )),
        None => Err(refuse(
            ErrorCode::BadRequest,
            "the connection closed before Hello",
        )),
    }
}

fn read_request(conn: &mut Conn) -> Result<(Message, Vec<OwnedFd>), Refusal> {
    match conn.read()? {
        Some((envelope, fds)) => Ok((envelope.message, fds)),
        None => Err(refuse(
            ErrorCode::BadRequest,
            "the connection closed before a request",
        )),
    }
}

fn check_launch(plan: &[u8], digest: &PlanDigest, fds: Vec<OwnedFd>) -> Result<Request, Refusal> {
    // Digest, size limit, exact decoding and Plan::validate: the same code
    // the front end ran, run again on what arrived.
    let plan =
        Plan::verify(plan, digest).map_err(|e| refuse(ErrorCode::InvalidPlan, e.to_string()))?;
    let fds = check_fds(plan.plan(), fds)?;
    Ok(Request { plan, fds })
}

/// The descriptors must be exactly the plan's host paths (of the right
/// kinds), its secrets (regular files), the caller's stdio and its mount
/// namespace.
fn check_fds(plan: &Plan, mut fds: Vec<OwnedFd>) -> Result<Descriptors, Refusal> {
    let paths = plan.host_paths();
    let expected = plan.launch_fd_count();
    if fds.len() != expected {
        return Err(refuse(
            ErrorCode::BadRequest,
            format!(
                "the plan needs {expected} descriptors (host paths, secrets, stdio, mount namespace); {} came",
                fds.len()
            ),
        ));
    }
    let mount_ns = fds
        .pop()
        .ok_or_else(|| refuse(ErrorCode::BadRequest, "no descriptors"))?;
    let violations = if plan.violations_file() {
        let fd = fds
            .pop()
            .ok_or_else(|| refuse(ErrorCode::BadRequest, "no violations file descriptor"))?;
        let mode = sys::fstat(fd.as_fd())
            .map_err(|e| refuse(ErrorCode::BadRequest, format!("violations file: {e}")))?
            .st_mode
            & libc::S_IFMT;
        if !sys::is_writable(fd.as_fd()) || mode == libc::S_IFDIR {
            return Err(refuse(
                ErrorCode::BadRequest,
                "the violations file's descriptor is not open for writing",
            ));
        }
        Some(fd)
    } else {
        None
    };
    let stdio = fds.split_off(paths.len() + plan.secrets.len());
    let secret_fds = fds.split_off(paths.len());
    for ((path, kind), fd) in paths.iter().zip(&fds) {
        let mode = sys::fstat(fd.as_fd())
            .map_err(|e| refuse(ErrorCode::BadRequest, format!("descriptor for {path}: {e}")))?
            .st_mode
            & libc::S_IFMT;
        let ok = match kind {
            HostKind::Directory => mode == libc::S_IFDIR,
            HostKind::File => mode == libc::S_IFREG,
            HostKind::Any => mode == libc::S_IFDIR || mode == libc::S_IFREG,
        };
        if !ok {
            return Err(refuse(
                ErrorCode::BadRequest,
                format!("descriptor for {path} is not a {kind:?}"),
            ));
        }
    }
    for (secret, fd) in plan.secrets.iter().zip(&secret_fds) {
        let mode = sys::fstat(fd.as_fd())
            .map_err(|e| {
                refuse(
                    ErrorCode::BadRequest,
                    format!("secret {}: {e}", secret.name),
                )
            })?
            .st_mode
            & libc::S_IFMT;
        if mode != libc::S_IFREG {
            return Err(refuse(
                ErrorCode::BadRequest,
                format!(
                    "descriptor for secret {} is not a regular file",
                    secret.name
                ),
            ));
        }
    }
    Ok(Descriptors {
        host_fds: fds,
        secret_fds,
        stdio,
        violations,
        mount_ns,
    })
}
