//! Canonical encoding of a plan and the digest that names it.
//!
//! bincode with a fixed configuration is deterministic for our types (maps
//! are `BTreeMap`), so the digest of the encoded bytes is the plan's
//! identity in the audit log, in state files and in admin pins.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plan::{Plan, PlanError};

/// Largest encoded plan accepted, well below the 1 MiB frame limit.
pub const MAX_PLAN_BYTES: usize = 512 * 1024;

pub(crate) type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ crate::wire::MAX_FRAME_BYTES }>,
>;

pub(crate) const CONFIG: Config = bincode::config::standard().with_limit();

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("plan encoding failed: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("plan decoding failed: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("{0} trailing bytes after the encoded value")]
    Trailing(usize),
    #[error("encoded plan is {0} bytes (at most {MAX_PLAN_BYTES})")]
    TooLarge(usize),
    #[error("plan digest does not match its bytes")]
    DigestMismatch,
    #[error("invalid plan: {0}")]
    Invalid(#[from] PlanError),
}

/// SHA-256 of a plan's canonical encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PlanDigest(pub [u8; 32]);

impl PlanDigest {
    pub fn of_bytes(bytes: &[u8]) -> PlanDigest {
        PlanDigest(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for PlanDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Decodes exactly one value from `bytes`, refusing anything left over:
/// bincode would otherwise accept trailing garbage silently.
pub(crate) fn decode_exact<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, CONFIG)?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

/// A plan that has been decoded, digest-checked and validated: the only
/// thing an executor accepts from outside its own process.
#[derive(Debug, Clone)]
pub struct Verified {
    plan: Plan,
    digest: PlanDigest,
}

impl Verified {
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn digest(&self) -> PlanDigest {
        self.digest
    }
}

impl Plan {
    /// Validates, then encodes canonically.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        self.validate()?;
        let bytes = bincode::serde::encode_to_vec(self, CONFIG)?;
        if bytes.len() > MAX_PLAN_BYTES {
            return Err(CodecError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// Encodes and wraps in [`Verified`]: for an executor that built the
    /// plan itself and wants its digest.
    pub fn seal(self) -> Result<Verified, CodecError> {
        let digest = PlanDigest::of_bytes(&self.encode()?);
        Ok(Verified { plan: self, digest })
    }

    /// Decodes bytes from an untrusted sender: size limit, exact length,
    /// claimed digest, then [`Plan::validate`].
    pub fn verify(bytes: &[u8], claimed: &PlanDigest) -> Result<Verified, CodecError> {
        if bytes.len() > MAX_PLAN_BYTES {
            return Err(CodecError::TooLarge(bytes.len()));
        }
        let digest = PlanDigest::of_bytes(bytes);
        if digest != *claimed {
            return Err(CodecError::DigestMismatch);
        }
        let plan: Plan = decode_exact(bytes)?;
        plan.validate()?;
        Ok(Verified { plan, digest })
    }
}
