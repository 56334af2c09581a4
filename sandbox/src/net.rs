//! The sandbox's network namespace (network mode "none": loopback only).
//!
//! Creating a network namespace is the slowest step of sandbox creation
//! (the kernel initializes every per-namespace subsystem), so a thread of
//! the sandbox process creates it, and brings loopback up, while the main
//! thread builds the mount table; the main thread joins it before mounting
//! sysfs, which shows the namespace's interfaces.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::thread::JoinHandle;

use crate::error::{Context, Error};
use crate::sys;

#[derive(Debug)]
pub struct Pending(JoinHandle<io::Result<OwnedFd>>);

/// Starts creating a loopback-only network namespace in the background.
/// The thread holds CAP_SYS_ADMIN and CAP_NET_ADMIN of the sandbox's user
/// namespace, which therefore owns the new network namespace.
pub fn create_in_background() -> Result<Pending, Error> {
    let thread = std::thread::Builder::new()
        .name("nucleus-net".into())
        .stack_size(64 * 1024)
        .spawn(|| {
            // unshare(CLONE_NEWNET) moves only this thread.
            sys::unshare(libc::CLONE_NEWNET)?;
            sys::loopback_up()?;
            Ok(File::open("/proc/thread-self/ns/net")?.into())
        })
        .step(|| "starting the network setup thread".into())?;
    Ok(Pending(thread))
}

impl Pending {
    /// Waits for the namespace and moves the calling thread into it.
    pub fn join(self) -> Result<(), Error> {
        let netns = self
            .0
            .join()
            .map_err(|_| Error::Setup {
                step: "network setup thread".into(),
                source: io::Error::other("the thread panicked"),
            })?
            .step(|| "creating the network namespace".into())?;
        sys::setns(netns.as_fd(), libc::CLONE_NEWNET)
            .step(|| "joining the network namespace".into())
    }
}
