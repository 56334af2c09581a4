//! Policy files: `--seccomp-profile` (OCI seccomp JSON), `--caps-policy`
//! and `--landlock-policy` (TOML), each optionally pinned by SHA-256.
//!
//! A file is read once; its bytes are hashed and checked against the pin,
//! then those same bytes are parsed, all before anything is created. Only
//! the compiled result (BPF, capability masks, Landlock bitmasks) goes into
//! the plan: the helper never sees a policy language. Every error names
//! the flag, the file, the line and column, and the field.
//!
//! The defaults are the files in `config/`, embedded in the binary.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use protocol::{Capabilities, SeccompProgram};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::policy_landlock::LandlockBase;
use crate::{policy_caps, policy_landlock, seccomp};

/// The policy flags as given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySpec {
    pub seccomp: Pinned,
    pub caps: Pinned,
    pub landlock: Pinned,
}

/// A policy file and the SHA-256 it must have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pinned {
    pub file: Option<PathBuf>,
    pub sha256: Option<[u8; 32]>,
}

/// The three kinds of policy file: their flags, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Seccomp,
    Caps,
    Landlock,
}

impl Kind {
    pub fn flag(self) -> &'static str {
        match self {
            Kind::Seccomp => "--seccomp-profile",
            Kind::Caps => "--caps-policy",
            Kind::Landlock => "--landlock-policy",
        }
    }
}

/// The policies, compiled: what goes into the plan's `Security`.
#[derive(Debug, Clone)]
pub struct Policies {
    pub seccomp: SeccompProgram,
    pub capabilities: Capabilities,
    /// Completed by [`policy_landlock::complete`] once the mounts are known.
    pub landlock: LandlockBase,
}

/// The policy options; false if `flag` is not one of them.
pub fn parse_flag(flag: &str, parser: &mut lexopt::Parser, spec: &mut PolicySpec) -> Result<bool> {
    let (pinned, is_pin) = match flag {
        "seccomp-profile" => (&mut spec.seccomp, false),
        "caps-policy" => (&mut spec.caps, false),
        "landlock-policy" => (&mut spec.landlock, false),
        "seccomp-profile-sha256" => (&mut spec.seccomp, true),
        "caps-policy-sha256" => (&mut spec.caps, true),
        "landlock-policy-sha256" => (&mut spec.landlock, true),
        _ => return Ok(false),
    };
    let value = parser.value()?;
    if is_pin {
        let hex = value
            .into_string()
            .map_err(|v: OsString| anyhow!("--{flag} {}: not valid UTF-8", v.to_string_lossy()))?;
        pinned.sha256 = Some(parse_sha256(&hex).with_context(|| format!("--{flag} {hex}"))?);
    } else {
        pinned.file = Some(value.into());
    }
    Ok(true)
}

/// 64 hexadecimal digits (either case).
pub fn parse_sha256(hex: &str) -> Result<[u8; 32]> {
    let digits = hex.as_bytes();
    if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
        bail!("expected a SHA-256 as 64 hexadecimal digits, as sha256sum prints it");
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).map_err(|_| anyhow!("not hexadecimal"))?;
        *byte = u8::from_str_radix(text, 16).map_err(|_| anyhow!("not hexadecimal"))?;
    }
    Ok(out)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Reads, checks and compiles every policy: the files given, the embedded
/// defaults otherwise. Runs before anything is created.
pub fn load(spec: &PolicySpec) -> Result<Policies> {
    let seccomp = match read(Kind::Seccomp, &spec.seccomp)? {
        Some(src) => seccomp::compile_profile(&src)?,
        None => seccomp::default_program()?,
    };
    let capabilities = match read(Kind::Caps, &spec.caps)? {
        Some(src) => policy_caps::parse(&src)?,
        None => policy_caps::default_capabilities()?,
    };
    let landlock = match read(Kind::Landlock, &spec.landlock)? {
        Some(src) => policy_landlock::parse(&src)?,
        None => policy_landlock::default_base()?,
    };
    Ok(Policies {
        seccomp,
        capabilities,
        landlock,
    })
}

/// A policy's text, and how to name it in messages.
#[derive(Debug, Clone)]
pub struct Source {
    /// `--caps-policy caps.toml`, or `built-in config/caps-default.toml`.
    pub name: String,
    pub text: String,
}

impl Source {
    /// An embedded default.
    pub fn builtin(file: &str, text: &str) -> Source {
        Source {
            name: format!("built-in config/{file}"),
            text: text.to_owned(),
        }
    }

    /// An error at byte `offset` of the text, in `field`.
    pub fn error_at(&self, offset: Option<usize>, field: &str, message: &str) -> anyhow::Error {
        let mut out = self.name.clone();
        if let Some(offset) = offset {
            let (line, column) = line_column(&self.text, offset);
            let _ = write!(out, ":{line}:{column}");
        }
        if !field.is_empty() && field != "." {
            let _ = write!(out, ": {field}");
        }
        anyhow!("{out}: {message}")
    }

    /// An error at a 1-based line and column, in `field`.
    pub fn error_at_line(
        &self,
        line: usize,
        column: usize,
        field: &str,
        message: &str,
    ) -> anyhow::Error {
        let mut out = format!("{}:{line}:{column}", self.name);
        if !field.is_empty() && field != "." {
            let _ = write!(out, ": {field}");
        }
        anyhow!("{out}: {message}")
    }

    /// Deserializes TOML, with the field path and position of any error.
    pub fn parse_toml<T: DeserializeOwned>(&self) -> Result<T> {
        let de = match toml::Deserializer::parse(&self.text) {
            Ok(de) => de,
            Err(e) => {
                // A syntax error has no path; a duplicate key names itself.
                let span = e.span();
                let key = match &span {
                    Some(s) if e.message() == "duplicate key" => {
                        self.text.get(s.clone()).unwrap_or_default()
                    }
                    _ => "",
                };
                return Err(self.error_at(span.map(|s| s.start), key, e.message()));
            }
        };
        serde_path_to_error::deserialize(de).map_err(|e| {
            // toml::Spanned wraps its value in a private field.
            let field = e
                .path()
                .to_string()
                .replace(".$__serde_spanned_private_value", "");
            let inner = e.into_inner();
            self.error_at(inner.span().map(|s| s.start), &field, inner.message())
        })
    }

    /// Deserializes JSON, with the field path and position of any error.
    pub fn parse_json<T: DeserializeOwned>(&self) -> Result<T> {
        let mut de = serde_json::Deserializer::from_str(&self.text);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.to_string();
            // serde_json appends the position; it is given in front instead.
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m);
            self.error_at_line(inner.line(), inner.column().max(1), &field, message)
        })?;
        de.end().map_err(|e| {
            self.error_at_line(
                e.line(),
                e.column(),
                "",
                "trailing characters after the profile",
            )
        })?;
        Ok(value)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Reads `pinned.file`, if any, and checks it against `pinned.sha256`.
fn read(kind: Kind, pinned: &Pinned) -> Result<Option<Source>> {
    let flag = kind.flag();
    let Some(path) = &pinned.file else {
        if pinned.sha256.is_some() {
            bail!("{flag}-sha256 pins a file that is not given: add {flag} FILE");
        }
        return Ok(None);
    };
    let bytes = read_limited(path).map_err(|e| anyhow!("{flag} {}: {e}", path.display()))?;
    check_pin(kind, path, &bytes, pinned.sha256)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow!("{flag} {}: not UTF-8 text", path.display()))?;
    Ok(Some(Source {
        name: format!("{flag} {}", path.display()),
        text,
    }))
}

/// The largest policy file read (the default seccomp profile is ~10 KiB).
const MAX_POLICY_BYTES: u64 = 1 << 20;

/// A regular file's bytes, at most [`MAX_POLICY_BYTES`]: a FIFO or a
/// device would block or never end.
fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::OpenOptionsExt;

    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {MAX_POLICY_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}

/// A pinned file whose SHA-256 differs is fatal, naming both hashes.
pub fn check_pin(kind: Kind, path: &Path, bytes: &[u8], pin: Option<[u8; 32]>) -> Result<()> {
    let Some(expected) = pin else {
        return Ok(());
    };
    let actual: [u8; 32] = Sha256::digest(bytes).into();
    if actual != expected {
        let flag = kind.flag();
        bail!(
            "{flag} {}: SHA-256 mismatch: the file has {}, {flag}-sha256 expects {}",
            path.display(),
            hex(&actual),
            hex(&expected)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\nbé = [2, x]\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        let x = text.find('x').unwrap();
        assert_eq!(line_column(text, x), (2, 10));
    }

    #[test]
    fn sha256_pins_are_64_hex_digits() {
        let hex_text = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        let pin = parse_sha256(hex_text).unwrap();
        assert_eq!(hex(&pin), hex_text.to_ascii_lowercase());
        assert!(parse_sha256("e3b0").is_err());
        assert!(parse_sha256(&"g".repeat(64)).is_err());
    }

    #[test]
    fn pin_match_and_mismatch() {
        let path = Path::new("/x/caps.toml");
        // SHA-256 of the empty string.
        let empty =
            parse_sha256("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
                .unwrap();
        check_pin(Kind::Caps, path, b"", Some(empty)).unwrap();
        check_pin(Kind::Caps, path, b"anything", None).unwrap();
        let err = check_pin(Kind::Caps, path, b"x", Some(empty))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--caps-policy /x/caps.toml"), "{err}");
        assert!(err.contains(&hex(&empty)), "{err}");
        let actual = hex(&Sha256::digest(b"x"));
        assert!(err.contains(&actual), "{err}");
    }

    #[test]
    fn pins_are_checked_when_reading() {
        let dir = std::env::temp_dir().join(format!("nucleus-pin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("caps.toml");
        std::fs::write(&file, "[bounding]\nkeep = []\n").unwrap();
        let good: [u8; 32] = Sha256::digest(b"[bounding]\nkeep = []\n").into();
        let mut pinned = Pinned {
            file: Some(file.clone()),
            sha256: Some(good),
        };
        assert!(read(Kind::Caps, &pinned).unwrap().is_some());
        pinned.sha256 = Some([0; 32]);
        let err = read(Kind::Caps, &pinned).unwrap_err().to_string();
        assert!(err.contains("SHA-256 mismatch"), "{err}");
        let unpinned_file = Pinned {
            file: None,
            sha256: Some(good),
        };
        let err = read(Kind::Caps, &unpinned_file).unwrap_err().to_string();
        assert!(err.contains("--caps-policy-sha256"), "{err}");
        let not_a_file = Pinned {
            file: Some(dir.clone()),
            sha256: None,
        };
        let err = read(Kind::Caps, &not_a_file).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let null = Pinned {
            file: Some("/dev/zero".into()),
            sha256: None,
        };
        let err = read(Kind::Caps, &null).unwrap_err().to_string();
        assert!(
            err.contains("--caps-policy /dev/zero: not a regular file"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
