//! The helper protocol: a 4-byte big-endian length, then an [`Envelope`]
//! (magic, version, message). Pure functions over byte slices; the callers
//! own the sockets.

use serde::{Deserialize, Serialize};

use crate::codec::{decode_exact, CodecError, PlanDigest, CONFIG};
use crate::names::{SandboxId, SandboxName};

pub const MAGIC: [u8; 4] = *b"NUCL";
pub const PROTOCOL_VERSION: u32 = 6;
/// Largest frame body either side accepts.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
const LEN_BYTES: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    FrameTooLarge(usize),
    #[error("bad magic: not a nucleus frame")]
    BadMagic,
    #[error("protocol version {0} is not supported (this side speaks {PROTOCOL_VERSION})")]
    Version(u32),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Stable error codes the helper reports; the front end renders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    BadRequest,
    InvalidPlan,
    Unauthorized,
    Unsupported,
    SetupFailed,
    /// No sandbox with that id (or not one the caller may see).
    NotFound,
    Internal,
}

/// How a workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    Code(u8),
    Signal(u8),
}

impl ExitStatus {
    /// The shell convention: a signal N becomes 128+N.
    pub fn shell_code(self) -> u8 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128u8.saturating_add(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Hello {
        version: u32,
    },
    Welcome {
        version: u32,
    },
    /// The plan travels as its exact encoded bytes so the receiver can
    /// recompute the digest over what it decodes.
    Launch {
        plan: Vec<u8>,
        digest: PlanDigest,
    },
    Started {
        id: SandboxId,
        digest: PlanDigest,
    },
    /// The kernel OOM-killed something in the sandbox (sent before `Exited`).
    OutOfMemory,
    /// The plan's timeout killed the sandbox (sent before `Exited`).
    TimedOut,
    Exited(ExitStatus),
    Signal(u8),
    Resize {
        rows: u16,
        cols: u16,
    },
    /// Management, each on its own connection after the handshake: the
    /// caller's running sandboxes (everyone's for root), answered by
    /// `Sandboxes`.
    List,
    Sandboxes(Vec<SandboxInfo>),
    /// Ends a sandbox: `Term` lets the workload clean up, `Kill` does not.
    /// Another user's sandbox needs polkit's `org.nucleus.manage-others`.
    /// Answered by `Stopped` once the signal is delivered.
    Stop {
        id: SandboxId,
        signal: StopSignal,
    },
    Stopped,
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// What `Stop` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopSignal {
    Term,
    Kill,
}

/// One running sandbox, as `nucleus ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxInfo {
    pub id: SandboxId,
    pub name: Option<SandboxName>,
    pub uid: u32,
    pub digest: PlanDigest,
    /// Seconds since the Unix epoch.
    pub started: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub magic: [u8; 4],
    pub version: u32,
    pub message: Message,
}

impl Envelope {
    pub fn new(message: Message) -> Self {
        Envelope {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            message,
        }
    }
}

/// Length prefix plus encoded envelope.
pub fn encode_frame(envelope: &Envelope) -> Result<Vec<u8>, WireError> {
    let body = bincode::serde::encode_to_vec(envelope, CONFIG).map_err(CodecError::from)?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(WireError::FrameTooLarge(body.len()));
    }
    let len = u32::try_from(body.len()).map_err(|_| WireError::FrameTooLarge(body.len()))?;
    let mut frame = Vec::with_capacity(LEN_BYTES + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Decodes the first frame in `buf`. `Ok(None)` means more bytes are needed;
/// `Ok(Some((envelope, used)))` consumed `used` bytes. An oversized length
/// is refused before any of the body is read.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Envelope, usize)>, WireError> {
    let Some(len_bytes) = buf.get(..LEN_BYTES) else {
        return Ok(None);
    };
    let mut len = [0u8; LEN_BYTES];
    len.copy_from_slice(len_bytes);
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(WireError::FrameTooLarge(len));
    }
    let Some(body) = buf.get(LEN_BYTES..LEN_BYTES + len) else {
        return Ok(None);
    };
    let envelope: Envelope = decode_exact(body)?;
    if envelope.magic != MAGIC {
        return Err(WireError::BadMagic);
    }
    if envelope.version != PROTOCOL_VERSION {
        return Err(WireError::Version(envelope.version));
    }
    Ok(Some((envelope, LEN_BYTES + len)))
}
