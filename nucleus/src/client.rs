//! The front end's side of the helper protocol: send the plan with a
//! descriptor for every host path it names (opened here, as the caller, so
//! the helper can only mount what the caller could read), then relay
//! signals until the sandbox exits.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use protocol::{
    decode_frame, encode_frame, Envelope, ExitStatus, HostKind, Message, Plan, PlanDigest,
    SandboxId, SandboxInfo, StopSignal, MAX_FRAME_BYTES, PROTOCOL_VERSION,
};
use sandbox::pty::{window_size, RawMode};
use sandbox::signals::{self, SignalFd, FORWARDED};

/// Where systemd listens for the helper (systemd/nucleus-helper.socket).
pub const SOCKET: &str = "/run/nucleus/helper.sock";

pub fn available() -> bool {
    Path::new(SOCKET).exists()
}

/// How the sandbox ended, as the helper reported it.
#[derive(Debug)]
pub struct Ended {
    pub status: ExitStatus,
    pub out_of_memory: bool,
    pub timed_out: bool,
}

fn send(sock: &UnixStream, message: Message, fds: &[BorrowedFd<'_>]) -> Result<()> {
    let frame = encode_frame(&Envelope::new(message))?;
    // The descriptors travel with the first bytes; the rest follows.
    let sent =
        signals::send_with_fds(sock.as_fd(), &frame, fds).context("sending to the helper")?;
    (&*sock)
        .write_all(&frame[sent..])
        .context("sending to the helper")
}

fn receive(sock: &UnixStream) -> Result<Message> {
    let mut header = [0u8; 4];
    (&*sock)
        .read_exact(&mut header)
        .context("the helper closed the connection")?;
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_BYTES {
        bail!("the helper sent an oversized frame");
    }
    let mut frame = vec![0u8; 4 + len];
    frame[..4].copy_from_slice(&header);
    (&*sock)
        .read_exact(&mut frame[4..])
        .context("reading from the helper")?;
    let (envelope, _) =
        decode_frame(&frame)?.ok_or_else(|| anyhow!("incomplete frame from the helper"))?;
    Ok(envelope.message)
}

/// Opens every host path of the plan for reading, in launch order.
fn open_host_paths(plan: &Plan) -> Result<Vec<OwnedFd>> {
    plan.host_paths()
        .into_iter()
        .map(|(path, kind)| {
            let mut options = OpenOptions::new();
            // O_NONBLOCK: a path swapped for a FIFO since it was checked
            // must not block the open; the helper refuses its kind anyway.
            let base = libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
            let dir = if kind == HostKind::Directory {
                libc::O_DIRECTORY
            } else {
                0
            };
            options.read(true).custom_flags(base | dir);
            let file: File = options
                .open(path.as_str())
                .with_context(|| format!("opening {path} for the helper"))?;
            Ok(file.into())
        })
        .collect()
}

/// A connection past the handshake.
fn connect() -> Result<UnixStream> {
    let sock = UnixStream::connect(SOCKET)
        .with_context(|| format!("connecting to the nucleus helper at {SOCKET}"))?;
    send(
        &sock,
        Message::Hello {
            version: PROTOCOL_VERSION,
        },
        &[],
    )?;
    match receive(&sock)? {
        Message::Welcome { .. } => Ok(sock),
        other => Err(refusal(other)),
    }
}

/// The caller's sandboxes running through the helper (everyone's for root).
pub fn list() -> Result<Vec<SandboxInfo>> {
    let sock = connect()?;
    send(&sock, Message::List, &[])?;
    match receive(&sock)? {
        Message::Sandboxes(list) => Ok(list),
        other => Err(refusal(other)),
    }
}

/// Ends a sandbox; returns once it has exited.
pub fn stop(id: &SandboxId, signal: StopSignal) -> Result<()> {
    let sock = connect()?;
    send(
        &sock,
        Message::Stop {
            id: id.clone(),
            signal,
        },
        &[],
    )?;
    match receive(&sock)? {
        Message::Stopped => Ok(()),
        other => Err(refusal(other)),
    }
}

/// Runs `plan` through the helper.
pub fn run(plan: &Plan, secrets: Vec<OwnedFd>, violations: Option<OwnedFd>) -> Result<Ended> {
    let sock = connect()?;
    let bytes = plan.encode()?;
    let digest = PlanDigest::of_bytes(&bytes);
    let host = open_host_paths(plan)?;
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let mut fds: Vec<BorrowedFd<'_>> = host.iter().chain(&secrets).map(|f| f.as_fd()).collect();
    // The sandbox talks to our terminal or pipes directly, not through the helper.
    fds.extend([stdin.as_fd(), stdout.as_fd(), stderr.as_fd()]);
    fds.extend(violations.as_ref().map(|f| f.as_fd()));
    // Our mount namespace, where the host-path descriptors live: the
    // helper clones their mounts from inside it.
    let mount_ns = File::open("/proc/self/ns/mnt").context("opening our mount namespace")?;
    fds.push(mount_ns.as_fd());
    let mut watched = FORWARDED.to_vec();
    // With a terminal: our window's size changes go to the sandbox's, and
    // our terminal is raw while the helper relays it (restored on return).
    let _raw = if plan.process.tty {
        watched.push(libc::SIGWINCH);
        RawMode::enter(stdin.as_fd())?
    } else {
        None
    };
    let signals = SignalFd::block(&watched).context("blocking signals")?;
    send(
        &sock,
        Message::Launch {
            plan: bytes,
            digest,
        },
        &fds,
    )?;
    drop((host, secrets));
    let mut out_of_memory = false;
    let mut timed_out = false;
    loop {
        let ready = signals::wait_readable(&[sock.as_fd(), signals.as_fd()])?;
        if ready[1] {
            let sig = signals.read()?;
            let message = if sig == libc::SIGWINCH {
                window_size(&[stdin.as_fd(), stdout.as_fd()])
                    .map(|(rows, cols)| Message::Resize { rows, cols })
            } else {
                u8::try_from(sig).ok().map(Message::Signal)
            };
            if let Some(message) = message {
                // The helper may be gone already; its answer (or EOF) says so.
                let _ = send(&sock, message, &[]);
            }
        }
        if ready[0] {
            match receive(&sock)? {
                Message::Started { id, .. } => tracing::info!(%id, "started through the helper"),
                Message::OutOfMemory => out_of_memory = true,
                Message::TimedOut => timed_out = true,
                Message::Exited(status) => {
                    return Ok(Ended {
                        status,
                        out_of_memory,
                        timed_out,
                    })
                }
                other => return Err(refusal(other)),
            }
        }
    }
}

fn refusal(message: Message) -> anyhow::Error {
    match message {
        Message::Error { code, message } => anyhow!("the helper refused ({code:?}): {message}"),
        other => anyhow!("unexpected message from the helper: {other:?}"),
    }
}
