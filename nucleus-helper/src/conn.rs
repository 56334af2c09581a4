//! One client connection: frames in (with the descriptors they carry),
//! frames out. Every read is bounded: a frame's length is checked before
//! its body is read, and descriptors beyond the limit fail the frame.

use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};

use protocol::{decode_frame, encode_frame, Envelope, WireError, MAX_FRAME_BYTES, MAX_LAUNCH_FDS};

use crate::sys;

#[derive(Debug)]
pub enum ConnError {
    Io(io::Error),
    /// The peer closed the connection in the middle of a frame.
    Truncated,
    TooManyFds,
    Wire(WireError),
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Io(e) => write!(f, "reading the request: {e}"),
            ConnError::Truncated => f.write_str("the connection closed in the middle of a frame"),
            ConnError::TooManyFds => {
                write!(f, "more than {MAX_LAUNCH_FDS} descriptors in one request")
            }
            ConnError::Wire(e) => write!(f, "{e}"),
        }
    }
}

#[derive(Debug)]
pub struct Conn {
    sock: std::fs::File,
}

impl Conn {
    pub fn new(sock: OwnedFd) -> Conn {
        Conn { sock: sock.into() }
    }

    pub fn socket(&self) -> std::os::fd::BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// The next frame, or `None` when the peer closed between frames.
    pub fn read(&mut self) -> Result<Option<(Envelope, Vec<OwnedFd>)>, ConnError> {
        let mut fds = Vec::new();
        let mut header = [0u8; 4];
        if !self.fill(&mut header, &mut fds, true)? {
            return Ok(None);
        }
        let len = u32::from_be_bytes(header) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(ConnError::Wire(WireError::FrameTooLarge(len)));
        }
        let mut frame = vec![0u8; 4 + len];
        frame[..4].copy_from_slice(&header);
        self.fill(&mut frame[4..], &mut fds, false)?;
        match decode_frame(&frame).map_err(ConnError::Wire)? {
            Some((envelope, _)) => Ok(Some((envelope, fds))),
            None => Err(ConnError::Truncated),
        }
    }

    /// Reads exactly `buf.len()` bytes; false if EOF came first and
    /// `eof_ok` (nothing read yet).
    fn fill(
        &mut self,
        buf: &mut [u8],
        fds: &mut Vec<OwnedFd>,
        eof_ok: bool,
    ) -> Result<bool, ConnError> {
        let mut got = 0;
        while got < buf.len() {
            let (n, mut more, truncated) =
                match sys::recv_with_fds(self.sock.as_fd(), &mut buf[got..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => other.map_err(ConnError::Io)?,
                };
            if truncated || fds.len() + more.len() > MAX_LAUNCH_FDS {
                return Err(ConnError::TooManyFds);
            }
            fds.append(&mut more);
            if n == 0 {
                return if got == 0 && eof_ok {
                    Ok(false)
                } else {
                    Err(ConnError::Truncated)
                };
            }
            got += n;
        }
        Ok(true)
    }

    pub fn write(&mut self, envelope: &Envelope) -> io::Result<()> {
        let frame = encode_frame(envelope)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        self.sock.write_all(&frame)
    }
}
