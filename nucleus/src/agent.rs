//! Agent inputs on the host side: check the context, workspace and secret
//! sources as the caller, hash what must be verified, and open what the
//! sandbox will read.

use std::fs;
use std::io::{Read, Seek};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use protocol::{
    AbsPath, Context, ContextMode, Secret, SecretName, Sha256, Workspace, WorkspaceMode,
    SECRETS_DIR,
};
use sha2::{Digest, Sha256 as Hasher};
use zeroize::Zeroizing;

use crate::cli::{self, AgentSpec};
use crate::compile::canonical_dir;

/// Test hook: a shell command run after the context manifest is taken and
/// before the sandbox copies the context, so tests can change the source
/// in between. Runs as the caller, like everything here.
const MANIFEST_HOOK: &str = "NUCLEUS_HOOK_AFTER_CONTEXT_MANIFEST";

/// The agent parts of a plan, and the descriptors that go with it.
#[derive(Debug, Default)]
pub struct Agent {
    pub context: Option<Context>,
    pub workspace: Option<Workspace>,
    pub secrets: Vec<Secret>,
    pub secret_fds: Vec<OwnedFd>,
}

pub fn compile(spec: &AgentSpec) -> Result<Agent> {
    let (secrets, secret_fds) = secrets(&spec.secrets)?.into_iter().unzip();
    Ok(Agent {
        context: context(spec)?,
        workspace: workspace(spec)?,
        secrets,
        secret_fds,
    })
}

fn context(spec: &AgentSpec) -> Result<Option<Context>> {
    let Some(dir) = &spec.context else {
        if spec.verify_context {
            bail!("--verify-context-integrity: there is no --context to verify");
        }
        return Ok(None);
    };
    let flag = || format!("--context {}", dir.display());
    let source = canonical_dir(dir).with_context(flag)?;
    let mode = match spec.context_mode {
        cli::ContextMode::Copy => ContextMode::Copy,
        cli::ContextMode::Bind => ContextMode::Bind,
    };
    let verify = if spec.verify_context {
        if mode == ContextMode::Bind {
            bail!("--verify-context-integrity: only a copied context can be verified; drop --context-mode bind");
        }
        let root = sandbox::tree::open_root(Path::new(source.as_str())).with_context(flag)?;
        let digest = sandbox::tree::manifest_digest(root.as_fd())
            .map_err(|e| anyhow!("hashing {}: {}", e.path, e.source))
            .with_context(flag)?;
        run_manifest_hook()?;
        Some(digest)
    } else {
        None
    };
    Ok(Some(Context {
        source,
        mode,
        verify,
    }))
}

fn run_manifest_hook() -> Result<()> {
    let Ok(hook) = std::env::var(MANIFEST_HOOK) else {
        return Ok(());
    };
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&hook)
        .status()
        .context(MANIFEST_HOOK)?;
    if !status.success() {
        bail!("{MANIFEST_HOOK} failed: {status}");
    }
    Ok(())
}

fn workspace(spec: &AgentSpec) -> Result<Option<Workspace>> {
    let Some(dir) = &spec.workspace else {
        if spec.sync_on_timeout {
            bail!("--sync-on-timeout: there is no --workspace to sync");
        }
        return Ok(None);
    };
    let source = canonical_dir(dir).with_context(|| format!("--workspace {}", dir.display()))?;
    let mode = match spec.workspace_mode {
        cli::WorkspaceMode::BindRw => WorkspaceMode::BindRw,
        cli::WorkspaceMode::BindRo => WorkspaceMode::BindRo,
        cli::WorkspaceMode::CopyInOut => WorkspaceMode::CopyInOut {
            sync_on_timeout: spec.sync_on_timeout,
        },
    };
    if spec.sync_on_timeout && spec.workspace_mode != cli::WorkspaceMode::CopyInOut {
        bail!("--sync-on-timeout: only a copy-in-out workspace is synced; add --workspace-mode copy-in-out");
    }
    Ok(Some(Workspace { source, mode }))
}

/// Each secret is opened once, as the caller: hashed here (the plan holds
/// only the hash), read again by the sandbox through the same descriptor.
fn secrets(given: &[(std::path::PathBuf, String)]) -> Result<Vec<(Secret, OwnedFd)>> {
    given
        .iter()
        .map(|(src, dest)| {
            let flag = || format!("--secret {}:{dest}", src.display());
            let name = secret_name(dest).with_context(flag)?;
            // Checked before opening: opening a FIFO would block.
            let before = fs::metadata(src)
                .map_err(|e| anyhow!("{}: {e}", src.display()))
                .with_context(flag)?;
            if !before.is_file() {
                bail!("{}: {} is not a regular file", flag(), src.display());
            }
            let mut file = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(src)
                .map_err(|e| anyhow!("{}: {e}", src.display()))
                .with_context(flag)?;
            let meta = file.metadata().with_context(flag)?;
            if !meta.is_file() {
                bail!("{}: {} is not a regular file", flag(), src.display());
            }
            let mut contents = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
            file.read_to_end(&mut contents).with_context(flag)?;
            file.rewind().with_context(flag)?;
            let secret = Secret {
                name,
                sha256: Sha256(Hasher::digest(contents.as_slice()).into()),
                size: contents.len() as u64,
            };
            Ok((secret, file.into()))
        })
        .collect()
}

/// `NAME` or `/run/secrets/NAME`: secrets live in their own tmpfs, never
/// over a system path.
fn secret_name(dest: &str) -> Result<SecretName> {
    let name = match dest.strip_prefix(SECRETS_DIR).and_then(|rest| rest.strip_prefix('/')) {
        Some(rest) => rest,
        None if dest.starts_with('/') => bail!("destination {dest} is outside {SECRETS_DIR}; give a file name (it lands in {SECRETS_DIR})"),
        None => dest,
    };
    SecretName::try_from(name.to_owned()).map_err(|e| anyhow!("{e}"))
}

/// Names that usually hold credentials.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.ends_with("_TOKEN") || upper.ends_with("_KEY") || upper.contains("PASSWORD")
}

/// Where the workload may write, for Landlock.
pub fn writable_dirs(agent: &Agent) -> Vec<AbsPath> {
    match &agent.workspace {
        Some(ws) if ws.mode != WorkspaceMode::BindRo => AbsPath::try_from(protocol::WORKSPACE_DIR)
            .ok()
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_destinations() {
        assert_eq!(secret_name("token").unwrap().as_str(), "token");
        assert_eq!(secret_name("/run/secrets/token").unwrap().as_str(), "token");
        for bad in ["/etc/passwd", "/run/secrets/a/b", "../x", "/run/secretsx"] {
            assert!(secret_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_looking_names() {
        for name in [
            "GITHUB_TOKEN",
            "aws_secret_access_key",
            "DB_PASSWORD",
            "PASSWORD_FILE",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in ["PATH", "TOKENIZER", "KEYBOARD"] {
            assert!(!looks_secret(name), "{name}");
        }
    }
}
