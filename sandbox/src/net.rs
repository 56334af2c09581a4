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
use crate::{nflog, sys};

#[derive(Debug)]
pub struct Pending(JoinHandle<io::Result<(OwnedFd, Option<nflog::Reader>)>>);

/// Starts creating a loopback-only network namespace in the background.
/// The thread holds CAP_SYS_ADMIN and CAP_NET_ADMIN of the sandbox's user
/// namespace, which therefore owns the new network namespace; with
/// `denials`, it also opens the namespace's log of denied packets (which
/// needs CAP_NET_ADMIN there, which the workload's ids may not have).
pub fn create_in_background(denials: bool) -> Result<Pending, Error> {
    let thread = std::thread::Builder::new()
        .name("nucleus-net".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            // unshare(CLONE_NEWNET) moves only this thread.
            sys::unshare(libc::CLONE_NEWNET)?;
            sys::loopback_up()?;
            let reader = if denials {
                Some(nflog::Reader::open(nflog::GROUP)?)
            } else {
                None
            };
            Ok((File::open("/proc/thread-self/ns/net")?.into(), reader))
        })
        .step(|| "starting the network setup thread".into())?;
    Ok(Pending(thread))
}

impl Pending {
    /// Waits for the namespace and moves the calling thread into it;
    /// returns the log of denied packets, if asked for.
    pub fn join(self) -> Result<Option<nflog::Reader>, Error> {
        let (netns, reader) = self
            .0
            .join()
            .map_err(|_| Error::Setup {
                step: "network setup thread".into(),
                source: io::Error::other("the thread panicked"),
            })?
            .step(|| "creating the network namespace".into())?;
        sys::setns(netns.as_fd(), libc::CLONE_NEWNET)
            .step(|| "joining the network namespace".into())?;
        Ok(reader)
    }
}
