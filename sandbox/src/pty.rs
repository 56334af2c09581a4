//! The terminal relay for `-t`: the caller's terminal in raw mode on one
//! side, the sandbox's pseudo-terminal master on the other. The kernel's
//! line discipline in the pty does the rest (job control, ^C, ^Z).

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use crate::error::{Context, Error};
use crate::sys;

const STDIN: i32 = 0;
const STDOUT: i32 = 1;
const EOT: u8 = 0x04;

#[derive(Debug)]
pub struct Relay {
    master: Option<std::fs::File>,
    stdin_open: bool,
    /// The caller's terminal settings, restored on drop.
    saved: Option<libc::termios>,
}

impl Relay {
    pub fn start(master: OwnedFd) -> Result<Relay, Error> {
        let saved = if sys::isatty(STDIN) {
            let original =
                sys::tcgetattr(sys::stdio(STDIN)).step(|| "reading terminal settings".into())?;
            let mut raw = original;
            sys::make_raw(&mut raw);
            sys::tcsetattr(sys::stdio(STDIN), &raw)
                .step(|| "setting the terminal to raw mode".into())?;
            Some(original)
        } else {
            None
        };
        let relay = Relay {
            master: Some(std::fs::File::from(master)),
            stdin_open: true,
            saved,
        };
        relay.resize();
        Ok(relay)
    }

    /// Copies the caller's window size to the sandbox's terminal.
    pub fn resize(&self) {
        let Some(master) = &self.master else { return };
        for fd in [STDIN, STDOUT] {
            if let Ok(ws) = sys::get_winsize(sys::stdio(fd)) {
                // Best effort: a failed resize only affects layout.
                let _ = sys::set_winsize(master.as_fd(), &ws);
                return;
            }
        }
    }

    /// Descriptors to poll, in the order `pump` expects: stdin, master.
    pub fn poll_fds(&self) -> Vec<libc::pollfd> {
        let entry = |fd: i32, open: bool| libc::pollfd {
            fd: if open { fd } else { -1 },
            events: libc::POLLIN,
            revents: 0,
        };
        vec![
            entry(STDIN, self.stdin_open),
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
        match io::stdin().lock().read(&mut buf) {
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
                let mut out = io::stdout().lock();
                let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
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

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = sys::tcsetattr(sys::stdio(STDIN), saved);
        }
    }
}
