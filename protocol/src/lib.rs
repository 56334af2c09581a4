//! The vocabulary shared by every Nucleus component: the [`Plan`] (one exact,
//! resolved sandbox), its canonical encoding and digest, and the framed,
//! versioned envelope the front end and the privileged helper exchange.
//!
//! Trust level: this crate is linked into the privileged helper and decodes
//! bytes from untrusted callers. It therefore does no I/O, reads no
//! environment, never panics on input, and caps every size. Every value that
//! can be wrong is a newtype whose constructor (and whose `Deserialize`)
//! rejects it, so a decoded plan is well-formed by construction;
//! [`Plan::validate`] adds the cross-field rules. Both executors call it.

mod agent;
mod codec;
mod names;
mod network;
mod path;
mod plan;
mod security;
pub mod subids;
mod wire;

pub use agent::{
    Context, ContextMode, OverlayUpper, Secret, SecretName, Sha256, Workspace, WorkspaceMode,
};
pub use codec::{CodecError, PlanDigest, Verified, MAX_PLAN_BYTES};
pub use names::{Arg, EnvName, Hostname, NameError, SandboxId, SandboxName};
pub use network::{
    Bridge, BridgeName, Cidr, Domain, EgressPolicy, EgressReport, Ipv4Subnet, KernelBridge,
    NatBackend, NetworkMode, Proto, PublishedPort, MAX_EGRESS_DOMAINS, MAX_EGRESS_NETS,
    MAX_EGRESS_PORTS, MAX_PUBLISHED, MAX_RESOLVERS,
};
pub use path::{AbsPath, PathError};
pub use plan::{
    Argv, Hardening, HostKind, IdMap, IdMapping, IoWeight, Limits, MemoryLimit, MilliCpus, Mount,
    Namespaces, PidsLimit, Plan, PlanError, Process, RootFs, RootSource, ServiceMode, Timeout,
    CONTEXT_DIR, MAX_COPY_BYTES, MAX_LAUNCH_FDS, PAGE_BYTES, SECRETS_DIR, STDIO_FDS, WORKSPACE_DIR,
};
pub use security::{
    CapSet, Capabilities, Capability, Enforcement, FsAccess, LandlockPolicy, LandlockRule,
    SeccompMode, SeccompProgram, Security, SockFilter, CAP_LAST, LANDLOCK_MAX_ABI,
};
pub use wire::{
    decode_frame, encode_frame, Envelope, ErrorCode, ExitStatus, Message, SandboxInfo, StopSignal,
    WireError, MAGIC, MAX_FRAME_BYTES, PROTOCOL_VERSION,
};

#[cfg(any(test, feature = "test-support"))]
pub mod testing;
#[cfg(test)]
mod tests;
