//! Absolute, normalized paths: the only kind of path a plan can hold.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest path a plan accepts, in bytes (the kernel's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path {0:?} is not absolute")]
    NotAbsolute(String),
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
    #[error("path {0:?} contains '.', '..' or an empty component")]
    NotNormal(String),
    #[error("path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
}

/// An absolute path with no `.`/`..`/empty components and no trailing slash
/// (except `/` itself), so two spellings of one place compare equal and a
/// path can never climb out of the directory it is joined to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AbsPath(String);

impl AbsPath {
    pub fn root() -> Self {
        AbsPath("/".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The components after the leading slash; empty for `/`.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &AbsPath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }

    /// The path relative to `/`, suitable for `openat(root_fd, ..)`; `.` for `/`.
    pub fn relative(&self) -> &str {
        if self.is_root() {
            "."
        } else {
            &self.0[1..]
        }
    }

    pub fn parent(&self) -> Option<AbsPath> {
        if self.is_root() {
            return None;
        }
        match self.0.rfind('/') {
            Some(0) => Some(AbsPath::root()),
            Some(i) => Some(AbsPath(self.0[..i].to_owned())),
            None => None,
        }
    }
}

impl TryFrom<String> for AbsPath {
    type Error = PathError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        if s.contains('\0') {
            return Err(PathError::Nul(s));
        }
        if !s.starts_with('/') {
            return Err(PathError::NotAbsolute(s));
        }
        if s == "/" {
            return Ok(AbsPath(s));
        }
        let normal = s[1..]
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
        if !normal {
            return Err(PathError::NotNormal(s));
        }
        Ok(AbsPath(s))
    }
}

impl TryFrom<&str> for AbsPath {
    type Error = PathError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        AbsPath::try_from(s.to_owned())
    }
}

impl From<AbsPath> for String {
    fn from(p: AbsPath) -> String {
        p.0
    }
}

impl fmt::Display for AbsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_absolute_paths() {
        for p in ["/", "/usr", "/usr/lib/x86_64-linux-gnu", "/a b/c"] {
            assert!(AbsPath::try_from(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for p in [
            "",
            "usr",
            "/usr/",
            "//usr",
            "/usr/../etc",
            "/./x",
            "/a\0b",
            "/a//b",
        ] {
            assert!(AbsPath::try_from(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn prefix_is_component_wise() {
        let usr = AbsPath::try_from("/usr").unwrap();
        let usrlib = AbsPath::try_from("/usr/lib").unwrap();
        let usrx = AbsPath::try_from("/usrx").unwrap();
        assert!(usrlib.starts_with(&usr));
        assert!(!usrx.starts_with(&usr));
        assert!(usr.starts_with(&AbsPath::root()));
        assert_eq!(usrlib.parent(), Some(usr.clone()));
        assert_eq!(usr.parent(), Some(AbsPath::root()));
        assert_eq!(usrlib.relative(), "usr/lib");
    }
}
