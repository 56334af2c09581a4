//! `--landlock-policy FILE`: the filesystem access the workload keeps.
//!
//! ```toml
//! min_abi = 3            # optional: refuse kernels below Landlock ABI 3
//! [[rules]]
//! path = "/usr"
//! access = ["read", "execute"]
//! ```
//!
//! Everything Landlock can restrict is denied except what a rule grants
//! beneath its path. The file's rules are the base; the grants that other
//! options imply are added to them when the plan is compiled: read-write
//! volumes, the agent's writable directories, and a writable root
//! (`--rootfs` without `--read-only`, or `--overlay`).

use anyhow::Result;
use protocol::{
    AbsPath, Enforcement, FsAccess, LandlockPolicy, LandlockRule, Mount, RootFs, RootSource,
    LANDLOCK_MAX_ABI,
};
use serde::Deserialize;
use toml::Spanned;

use crate::policy::Source;

pub const DEFAULT_FILE: &str = "landlock-default.toml";
pub const DEFAULT_TEXT: &str = include_str!("../../config/landlock-default.toml");

/// A policy's rules and enforcement, before the grants other options imply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandlockBase {
    rules: Vec<LandlockRule>,
    enforcement: Enforcement,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    min_abi: Option<MinAbi>,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    path: Spanned<AbsPath>,
    access: Vec<Access>,
}

/// A Landlock ABI this nucleus knows: 1 to [`LANDLOCK_MAX_ABI`].
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "i64")]
struct MinAbi(u32);

impl TryFrom<i64> for MinAbi {
    type Error = String;

    fn try_from(abi: i64) -> Result<Self, Self::Error> {
        match u32::try_from(abi) {
            Ok(v @ 1..=LANDLOCK_MAX_ABI) => Ok(MinAbi(v)),
            _ => Err(format!(
                "Landlock ABI {abi} does not exist; use 1 to {LANDLOCK_MAX_ABI}"
            )),
        }
    }
}

/// The names of access rights in a policy file.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Access {
    /// Read files and list directories.
    Read,
    ReadFile,
    ReadDir,
    Execute,
    /// Write to and truncate existing files.
    Write,
    WriteFile,
    Truncate,
    /// Make files, directories, symlinks, sockets, FIFOs and device nodes.
    Create,
    MakeReg,
    MakeDir,
    MakeSym,
    MakeSock,
    MakeFifo,
    MakeChar,
    MakeBlock,
    /// Remove files and directories.
    Remove,
    RemoveFile,
    RemoveDir,
    /// Link or rename a file into another directory (ABI 2).
    Refer,
    /// ioctl on device files (ABI 5).
    IoctlDev,
}

impl Access {
    fn rights(self) -> FsAccess {
        match self {
            Access::Read => FsAccess::READ,
            Access::ReadFile => FsAccess::READ_FILE,
            Access::ReadDir => FsAccess::READ_DIR,
            Access::Execute => FsAccess::EXECUTE,
            Access::Write => FsAccess::WRITE_FILE.union(FsAccess::TRUNCATE),
            Access::WriteFile => FsAccess::WRITE_FILE,
            Access::Truncate => FsAccess::TRUNCATE,
            Access::Create => [
                FsAccess::MAKE_REG,
                FsAccess::MAKE_DIR,
                FsAccess::MAKE_SYM,
                FsAccess::MAKE_SOCK,
                FsAccess::MAKE_FIFO,
                FsAccess::MAKE_CHAR,
                FsAccess::MAKE_BLOCK,
            ]
            .into_iter()
            .fold(FsAccess::EMPTY, FsAccess::union),
            Access::MakeReg => FsAccess::MAKE_REG,
            Access::MakeDir => FsAccess::MAKE_DIR,
            Access::MakeSym => FsAccess::MAKE_SYM,
            Access::MakeSock => FsAccess::MAKE_SOCK,
            Access::MakeFifo => FsAccess::MAKE_FIFO,
            Access::MakeChar => FsAccess::MAKE_CHAR,
            Access::MakeBlock => FsAccess::MAKE_BLOCK,
            Access::Remove => FsAccess::REMOVE_FILE.union(FsAccess::REMOVE_DIR),
            Access::RemoveFile => FsAccess::REMOVE_FILE,
            Access::RemoveDir => FsAccess::REMOVE_DIR,
            Access::Refer => FsAccess::REFER,
            Access::IoctlDev => FsAccess::IOCTL_DEV,
        }
    }
}

/// Parses and checks a Landlock policy.
pub fn parse(src: &Source) -> Result<LandlockBase> {
    let file: File = src.parse_toml()?;
    let mut rules: Vec<LandlockRule> = Vec::with_capacity(file.rules.len());
    for (i, rule) in file.rules.into_iter().enumerate() {
        let span = rule.path.span();
        let path = rule.path.into_inner();
        if rules.iter().any(|r| r.path == path) {
            return Err(src.error_at(
                Some(span.start),
                &format!("rules[{i}].path"),
                &format!("a second rule for {path}; give each path one rule"),
            ));
        }
        let access = rule
            .access
            .iter()
            .map(|a| a.rights())
            .fold(FsAccess::EMPTY, FsAccess::union);
        rules.push(LandlockRule { path, access });
    }
    Ok(LandlockBase {
        rules,
        enforcement: match file.min_abi {
            Some(MinAbi(abi)) => Enforcement::MinimumAbi(abi),
            None => Enforcement::BestAbi,
        },
    })
}

/// The embedded `config/landlock-default.toml`.
pub fn default_base() -> Result<LandlockBase> {
    parse(&Source::builtin(DEFAULT_FILE, DEFAULT_TEXT))
}

/// The policy for a sandbox: the base rules, plus read-write access where
/// the sandbox owns the data by other options: writable volumes, the
/// agent's writable directories, and the root itself when it is writable.
pub fn complete(
    base: LandlockBase,
    root: &RootFs,
    volumes: &[Mount],
    writable: &[AbsPath],
) -> LandlockPolicy {
    let rw = FsAccess::READ_EXECUTE.union(FsAccess::WRITE);
    let mut rules = base.rules;
    let mut grant =
        |path: &AbsPath, access: FsAccess| match rules.iter_mut().find(|r| r.path == *path) {
            Some(rule) => rule.access = rule.access.union(access),
            None => rules.push(LandlockRule {
                path: path.clone(),
                access,
            }),
        };
    if matches!(
        (&root.source, root.read_only, &root.overlay),
        (_, _, Some(_)) | (RootSource::Directory(_), false, None)
    ) {
        grant(&AbsPath::root(), rw);
    }
    for dir in writable {
        grant(dir, rw);
    }
    for v in volumes {
        if let Mount::Bind {
            target,
            read_only: false,
            ..
        } = v
        {
            grant(target, rw);
        }
    }
    LandlockPolicy {
        handled: FsAccess::ALL,
        rules,
        enforcement: base.enforcement,
    }
}

#[cfg(test)]
mod tests {
    use protocol::OverlayUpper;

    use super::*;
    use crate::compile::abs;

    fn base(text: &str) -> Result<LandlockBase> {
        parse(&Source {
            name: "--landlock-policy l.toml".into(),
            text: text.into(),
        })
    }

    fn err(text: &str) -> String {
        format!("{:#}", base(text).unwrap_err())
    }

    fn tmpfs_root() -> RootFs {
        RootFs {
            source: RootSource::Tmpfs,
            read_only: true,
            overlay: None,
        }
    }

    /// The built-in policy as nucleus compiled it before policy files.
    fn historic_default(root_access: FsAccess) -> Vec<LandlockRule> {
        let rw = FsAccess::READ_EXECUTE.union(FsAccess::WRITE);
        let file_write = FsAccess::READ
            .union(FsAccess::WRITE_FILE)
            .union(FsAccess::TRUNCATE);
        [
            ("/", root_access),
            ("/tmp", rw),
            ("/dev", file_write.union(FsAccess::IOCTL_DEV)),
            ("/dev/shm", rw),
            ("/proc", file_write),
        ]
        .into_iter()
        .map(|(p, access)| LandlockRule {
            path: abs(p).unwrap(),
            access,
        })
        .collect()
    }

    #[test]
    fn the_embedded_default_is_the_shipped_file() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/landlock-default.toml"
        );
        assert_eq!(std::fs::read(path).unwrap(), DEFAULT_TEXT.as_bytes());
    }

    #[test]
    fn the_default_file_compiles_to_the_historic_default() {
        let policy = complete(default_base().unwrap(), &tmpfs_root(), &[], &[]);
        assert_eq!(
            policy,
            LandlockPolicy {
                handled: FsAccess::ALL,
                rules: historic_default(FsAccess::READ_EXECUTE),
                enforcement: Enforcement::BestAbi,
            }
        );
        let overlay = RootFs {
            overlay: Some(OverlayUpper::Tmpfs),
            ..tmpfs_root()
        };
        let rw = FsAccess::READ_EXECUTE.union(FsAccess::WRITE);
        let policy = complete(default_base().unwrap(), &overlay, &[], &[]);
        assert_eq!(policy.rules, historic_default(rw));
    }

    #[test]
    fn the_example_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/landlock-example.toml"
        );
        let b = base(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(b.enforcement, Enforcement::MinimumAbi(3));
    }

    #[test]
    fn grants_write_only_where_owned() {
        let vols = vec![
            Mount::Bind {
                source: abs("/srv/a").unwrap(),
                target: abs("/a").unwrap(),
                read_only: false,
            },
            Mount::Bind {
                source: abs("/srv/b").unwrap(),
                target: abs("/b").unwrap(),
                read_only: true,
            },
        ];
        let ws = abs("/workspace").unwrap();
        let policy = complete(default_base().unwrap(), &tmpfs_root(), &vols, &[ws]);
        let writable: Vec<&str> = policy
            .rules
            .iter()
            .filter(|r| r.access.bits() & FsAccess::MAKE_REG.bits() != 0)
            .map(|r| r.path.as_str())
            .collect();
        assert_eq!(writable, ["/tmp", "/dev/shm", "/workspace", "/a"]);
    }

    #[test]
    fn access_names_and_min_abi() {
        let b = base("min_abi = 2\n[[rules]]\npath = \"/data\"\naccess = [\"read\", \"create\", \"remove_file\"]\n").unwrap();
        assert_eq!(b.enforcement, Enforcement::MinimumAbi(2));
        assert_eq!(b.rules[0].path.as_str(), "/data");
        assert_eq!(
            b.rules[0].access.bits(),
            FsAccess::READ.bits() | 0b1_1111_1100_0000 | FsAccess::REMOVE_FILE.bits()
        );
    }

    #[test]
    fn unknown_access_right_is_named_with_its_position() {
        let e = err("[[rules]]\npath = \"/x\"\naccess = [\"read\", \"fly\"]\n");
        assert!(
            e.starts_with(
                "--landlock-policy l.toml:3:19: rules[0].access[1]: unknown variant `fly`"
            ),
            "{e}"
        );
    }

    #[test]
    fn bad_min_abi() {
        for (text, col) in [
            ("min_abi = 0\n", 11),
            ("min_abi = 99\n", 11),
            ("min_abi = -1\n", 11),
        ] {
            let e = err(text);
            assert!(
                e.starts_with(&format!(
                    "--landlock-policy l.toml:1:{col}: min_abi: Landlock ABI"
                )),
                "{e}"
            );
        }
        let e = err("min_abi = \"3\"\n");
        assert!(
            e.starts_with("--landlock-policy l.toml:1:11: min_abi: invalid type: string"),
            "{e}"
        );
    }

    #[test]
    fn relative_and_duplicate_paths_are_refused() {
        let e = err("[[rules]]\npath = \"tmp\"\naccess = []\n");
        assert!(
            e.starts_with("--landlock-policy l.toml:2:8: rules[0].path: "),
            "{e}"
        );
        let e =
            err("[[rules]]\npath = \"/x\"\naccess = []\n[[rules]]\npath = \"/x\"\naccess = []\n");
        assert!(
            e.starts_with("--landlock-policy l.toml:5:8: rules[1].path: a second rule for /x"),
            "{e}"
        );
    }

    #[test]
    fn unknown_fields_and_wrong_types() {
        let e = err("[[rules]]\npath = \"/x\"\naccess = []\nrecursive = true\n");
        assert!(
            e.starts_with(
                "--landlock-policy l.toml:4:1: rules[0].recursive: unknown field `recursive`"
            ),
            "{e}"
        );
        let e = err("[[rules]]\npath = \"/x\"\naccess = \"read\"\n");
        assert!(
            e.starts_with("--landlock-policy l.toml:3:10: rules[0].access: invalid type: string"),
            "{e}"
        );
        let e = err("[[rules]]\naccess = []\n");
        assert!(e.contains("missing field `path`"), "{e}");
    }
}
