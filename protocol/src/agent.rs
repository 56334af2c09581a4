//! What agent workloads bring into a sandbox: a context tree, a workspace,
//! secrets, and an overlay over the root.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::names::NameError;
use crate::path::AbsPath;

/// SHA-256 of something the plan must not carry in clear: a secret's
/// contents, or the sorted manifest of a directory tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sha256(pub [u8; 32]);

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContextMode {
    /// Copied into a tmpfs at `/context` before the workload starts.
    Copy,
    /// Bound read-only at `/context`.
    Bind,
}

/// Read-only input for the workload, at `/context`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    pub source: AbsPath,
    pub mode: ContextMode,
    /// Manifest digest of the source taken before launch; the populated
    /// `/context` must match it (copy mode only).
    pub verify: Option<Sha256>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkspaceMode {
    BindRw,
    BindRo,
    /// Copied into the sandbox; changes are synced back when the workload
    /// exits (not after a timeout unless `sync_on_timeout`).
    CopyInOut {
        sync_on_timeout: bool,
    },
}

/// The tree the workload works on, at `/workspace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workspace {
    pub source: AbsPath,
    pub mode: WorkspaceMode,
}

/// A file name under the secrets directory: one path component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretName(String);

impl SecretName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SecretName {
    type Error = NameError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let ok = (1..=255).contains(&s.len())
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(SecretName(s))
        } else {
            Err(NameError::SecretName(s))
        }
    }
}

impl From<SecretName> for String {
    fn from(n: SecretName) -> String {
        n.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A secret: its contents travel beside the plan as a file descriptor, so
/// the plan (and its digest, logs, state) only ever hold their hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    pub name: SecretName,
    pub sha256: Sha256,
    pub size: u64,
}

/// Where an overlay root keeps its writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverlayUpper {
    /// A tmpfs: writes vanish with the sandbox.
    Tmpfs,
    /// A host directory holding `upper/` and `work/`, kept after exit.
    Directory(AbsPath),
}
