//! Names and strings that cross into the kernel: sandbox names, hostnames,
//! environment variable names, and NUL-free arguments.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("sandbox name {0:?} must be 1-63 characters of [A-Za-z0-9_.-], starting with a letter or digit")]
    SandboxName(String),
    #[error(
        "hostname {0:?} must be 1-63 characters of [A-Za-z0-9-], not starting or ending with '-'"
    )]
    Hostname(String),
    #[error("environment variable name {0:?} must be non-empty and contain no '=' or NUL")]
    EnvName(String),
    #[error("secret name {0:?} must be one path component of [A-Za-z0-9._-]")]
    SecretName(String),
    #[error("sandbox id {0:?} must be {SANDBOX_ID_LEN} lowercase hex digits (see `nucleus ps`)")]
    SandboxId(String),
    #[error("argument or value contains a NUL byte")]
    Nul,
    #[error("argument or value is longer than {MAX_ARG_BYTES} bytes")]
    TooLong,
}

/// Longest single argument or environment value (the kernel's `MAX_ARG_STRLEN`).
pub const MAX_ARG_BYTES: usize = 128 * 1024;

macro_rules! string_newtype {
    ($name:ident, $check:expr) => {
        impl TryFrom<String> for $name {
            type Error = NameError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                let check: fn(String) -> Result<String, NameError> = $check;
                check(s).map($name)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = NameError;

            fn try_from(s: &str) -> Result<Self, Self::Error> {
                $name::try_from(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A sandbox's name: what `ps`, `stop` and the audit log call it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SandboxName(String);

string_newtype!(SandboxName, |s| {
    let ok = (1..=63).contains(&s.len())
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(s)
    } else {
        Err(NameError::SandboxName(s))
    }
});

/// Length of a [`SandboxId`] in hex digits (64 random bits).
pub const SANDBOX_ID_LEN: usize = 16;

/// The helper's name for one running sandbox: random, unique per host,
/// what `nucleus ps` lists and `nucleus stop` takes. Also a file name in
/// the helper's state directory, hence the strict alphabet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SandboxId(String);

string_newtype!(SandboxId, |s| {
    if s.len() == SANDBOX_ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(s)
    } else {
        Err(NameError::SandboxId(s))
    }
});

impl SandboxId {
    pub fn from_bytes(bytes: [u8; SANDBOX_ID_LEN / 2]) -> SandboxId {
        SandboxId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// A single RFC 1123 label: what the sandbox's UTS namespace reports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hostname(String);

string_newtype!(Hostname, |s| {
    let ok = (1..=63).contains(&s.len())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(s)
    } else {
        Err(NameError::Hostname(s))
    }
});

/// An environment variable name: non-empty, no `=`, no NUL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnvName(String);

string_newtype!(EnvName, |s| {
    if s.is_empty() || s.contains('=') || s.contains('\0') || s.len() > MAX_ARG_BYTES {
        Err(NameError::EnvName(s))
    } else {
        Ok(s)
    }
});

/// A string the kernel receives as a C string (argv entries, environment
/// values): no interior NUL, at most [`MAX_ARG_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Arg(String);

string_newtype!(Arg, |s| {
    if s.contains('\0') {
        Err(NameError::Nul)
    } else if s.len() > MAX_ARG_BYTES {
        Err(NameError::TooLong)
    } else {
        Ok(s)
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_names() {
        assert!(SandboxName::try_from("agent-1.work_2").is_ok());
        for bad in ["", "-x", ".x", "a/b", "a b", &"x".repeat(64)] {
            assert!(SandboxName::try_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sandbox_ids() {
        let id = SandboxId::from_bytes([0, 1, 0xab, 0xff, 9, 8, 7, 6]);
        assert_eq!(id.as_str(), "0001abff09080706");
        assert_eq!(SandboxId::try_from(id.as_str()), Ok(id));
        for bad in [
            "",
            "0001abff0908070",
            "0001ABFF09080706",
            "../../etc/passwd",
            "0001abff0908070g",
        ] {
            assert!(SandboxId::try_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hostnames() {
        assert!(Hostname::try_from("nucleus-1").is_ok());
        for bad in ["", "-a", "a-", "a.b", "a_b", &"x".repeat(64)] {
            assert!(Hostname::try_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn env_names_and_args() {
        assert!(EnvName::try_from("PATH").is_ok());
        assert!(EnvName::try_from("A=B").is_err());
        assert!(EnvName::try_from("").is_err());
        assert!(Arg::try_from("a\0b").is_err());
        assert!(Arg::try_from("").is_ok());
    }
}
