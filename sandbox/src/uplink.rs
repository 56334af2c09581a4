//! A bridged sandbox's way out, set up by the executor once the sandbox
//! has handed over its network namespace: the kernel bridge or a
//! userspace NAT, then the egress rules in the sandbox's namespace
//! (whatever the backend). `detach` undoes what the backend made.

use std::net::IpAddr;
use std::os::fd::BorrowedFd;

use protocol::{Bridge, NatBackend};

use crate::error::Error;
use crate::tools::{failed, Inside};
use crate::{bridge, egress, firewall, sys, userspace};

pub enum Uplink {
    Kernel(bridge::Attached),
    Userspace(userspace::Running),
}

/// `resolved`: the addresses of the egress policy's domains.
pub fn attach(
    plan: &Bridge,
    resolved: &[IpAddr],
    inside: &Inside<BorrowedFd<'_>>,
) -> Result<Uplink, Error> {
    let uplink = match &plan.backend {
        NatBackend::Kernel(kernel) => {
            if sys::geteuid() != 0 {
                return Err(failed(
                    "--network bridge".into(),
                    "the kernel bridge backend needs root",
                ));
            }
            let fw = firewall::for_backend(&plan.backend);
            Uplink::Kernel(bridge::attach(kernel, &plan.publish, fw, inside)?)
        }
        backend => {
            // Said here rather than in the tool's words: which port is taken.
            drop(bridge::reserve(&plan.publish)?);
            Uplink::Userspace(userspace::start(backend, &plan.publish, inside)?)
        }
    };
    if let Some(policy) = &plan.egress {
        if let Err(e) = egress::apply(policy, resolved, inside) {
            uplink.detach();
            return Err(e);
        }
    }
    Ok(uplink)
}

impl Uplink {
    /// Takes the sandbox off the network; failures are reported, not
    /// fatal: the sandbox has ended either way.
    pub fn detach(self) {
        let failures = match self {
            Uplink::Kernel(attached) => attached.detach(),
            Uplink::Userspace(mut running) => {
                running.stop();
                Vec::new()
            }
        };
        for failure in failures {
            eprintln!("nucleus: warning: cleaning up the sandbox's network: {failure}");
        }
    }
}
