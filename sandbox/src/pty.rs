//! The terminal relay for `-t`: the caller's terminal on one side, the
//! sandbox's pseudo-terminal master on the other. The kernel's line
//! discipline in the pty does the rest (job control, ^C, ^Z).
//!
//! The caller's terminal is in raw mode while the relay runs, so every
//! key reaches the sandbox's line discipline. An in-process executor sets
//! that itself; a helper's client does it on its own terminal, as the
//! helper relays descriptors it was given and never owns the terminal.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::error::{Context, Error};
use crate::sys;

const EOT: u8 = 0x04;

/// A terminal switched to raw mode; its settings come back on drop.
#[derive(Debug)]
pub struct RawMode {
    tty: OwnedFd,
    saved: libc::termios,
}

impl RawMode {
    /// Raw mode on `fd` if it is a terminal; None if it is not.
    pub fn enter(fd: BorrowedFd<'_>) -> Result<Option<RawMode>, Error> {
        if !sys::isatty(fd.as_raw_fd()) {
            return Ok(None);
        }
        let tty = fd
            .try_clone_to_owned()
            .step(|| "duplicating the terminal".into())?;
        let saved = sys::tcgetattr(tty.as_fd()).step(|| "reading terminal settings".into())?;
        let mut raw = saved;
        sys::make_raw(&mut raw);
        sys::tcsetattr(tty.as_fd(), &raw).step(|| "setting the terminal to raw mode".into())?;
        Ok(Some(RawMode { tty, saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = sys::tcsetattr(self.tty.as_fd(), &self.saved);
    }
}

/// The window size of whichever of `fds` is a terminal, as (rows, cols).
pub fn window_size(fds: &[BorrowedFd<'_>]) -> Option<(u16, u16)> {
    fds.iter()
        .find_map(|fd| sys::get_winsize(*fd).ok())
        .map(|ws| (ws.ws_row, ws.ws_col))
}

#[derive(Debug)]
pub struct Relay {
    master: Option<std::fs::File>,
    input: std::fs::File,
    output: std::fs::File,
    stdin_open: bool,
    _raw: Option<RawMode>,
}

impl Relay {
    /// `io` is the caller's terminal (input, output) when it is not this
    /// process's stdin and stdout; this process's own are put in raw mode.
    pub fn start(master: OwnedFd, io: Option<(OwnedFd, OwnedFd)>) -> Result<Relay, Error> {
        let (input, output, raw) = match io {
            Some((input, output)) => (input, output, None),
            None => {
                let dup = |fd| {
                    sys::stdio(fd)
                        .try_clone_to_owned()
                        .step(|| "duplicating stdio".into())
                };
                let raw = RawMode::enter(sys::stdio(0))?;
                (dup(0)?, dup(1)?, raw)
            }
        };
        let relay = Relay {
            master: Some(std::fs::File::from(master)),
            input: input.into(),
            output: output.into(),
            stdin_open: true,
            _raw: raw,
        };
        relay.resize();
        Ok(relay)
    }

    /// Copies the caller's window size to the sandbox's terminal.
    pub fn resize(&self) {
        if let Some(size) = window_size(&[self.input.as_fd(), self.output.as_fd()]) {
            self.set_size(size);
        }
    }

    /// Sets the sandbox's terminal to (rows, cols).
    pub fn set_size(&self, (rows, cols): (u16, u16)) {
        let Some(master) = &self.master else { return };
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // Best effort: a failed resize only affects layout.
        let _ = sys::set_winsize(master.as_fd(), &ws);
    }

    /// Descriptors to poll, in the order `pump` expects: input, master.
    pub fn poll_fds(&self) -> Vec<libc::pollfd> {
        let entry = |fd: i32, open: bool| libc::pollfd {
            fd: if open { fd } else { -1 },
            events: libc::POLLIN,
            revents: 0,
        };
        vec![
            entry(self.input.as_raw_fd(), self.stdin_open),
            entry(
                self.master.as_ref().map_or(-1, |m| m.as_raw_fd()),
                self.master.is_some(),
            ),
        ]
    }

    /// Moves whatever `poll` reported ready.
    pub fn pump(&mut self, ready: &[libc::pollfd]) {
        let [stdin, master] = ready else { return };
        if stdin.revents & (libc::POLLIN | libc::POLLHUP) != 0 {
            self.copy_stdin();
        }
        if master.revents & libc::POLLIN != 0 {
            self.copy_output();
        } else if master.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            // Every slave descriptor is closed: nothing more will come.
            self.master = None;
        }
    }

    fn copy_stdin(&mut self) {
        let Some(master) = self.master.as_mut() else {
            return;
        };
        let mut buf = [0u8; 4096];
        match self.input.read(&mut buf) {
            Ok(0) | Err(_) => {
                self.stdin_open = false;
                // A piped stdin has ended: tell the terminal, as ^D would.
                let _ = master.write_all(&[EOT]);
            }
            Ok(n) => {
                let _ = master.write_all(&buf[..n]);
            }
        }
    }

    /// Copies one read's worth of output; false once the master is done.
    fn copy_output(&mut self) -> bool {
        let Some(master) = self.master.as_mut() else {
            return false;
        };
        let mut buf = [0u8; 8192];
        match master.read(&mut buf) {
            Ok(n) if n > 0 => {
                let _ = self
                    .output
                    .write_all(&buf[..n])
                    .and_then(|()| self.output.flush());
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            // EIO: the last slave closed.
            _ => {
                self.master = None;
                false
            }
        }
    }

    /// After the workload exited: copy what is still buffered in the pty.
    pub fn drain(&mut self) {
        if let Some(master) = &self.master {
            // Poll with a zero timeout before each read so draining never blocks.
            let mut fds = [libc::pollfd {
                fd: master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            while matches!(sys::poll(&mut fds, 0), Ok(1)) && fds[0].revents & libc::POLLIN != 0 {
                if !self.copy_output() {
                    break;
                }
                fds[0].revents = 0;
            }
        }
    }
}
