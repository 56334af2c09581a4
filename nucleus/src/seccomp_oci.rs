//! OCI seccomp profiles (JSON) compiled to BPF with libseccomp. The plan
//! carries only the compiled program; nothing past the front end parses
//! a profile.

use std::io::Read;

use anyhow::{bail, Context, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Profile {
    #[serde(default, rename = "comment")]
    _comment: Option<String>,
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u16>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rule {
    #[serde(default, rename = "comment")]
    _comment: Option<String>,
    names: Vec<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u16>,
    #[serde(default)]
    args: Vec<ArgRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ArgRule {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

const EPERM: u16 = 1;

fn action(name: &str, errno: Option<u16>) -> Result<ScmpAction> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(i32::from(errno.unwrap_or(EPERM))),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_LOG" => ScmpAction::Log,
        other => bail!("unknown action {other:?} (use SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP or SCMP_ACT_LOG)"),
    })
}

fn arch(name: &str) -> Result<ScmpArch> {
    Ok(match name {
        "SCMP_ARCH_X86_64" => ScmpArch::X8664,
        "SCMP_ARCH_X86" => ScmpArch::X86,
        "SCMP_ARCH_X32" => ScmpArch::X32,
        "SCMP_ARCH_AARCH64" => ScmpArch::Aarch64,
        other => bail!("unsupported architecture {other:?}"),
    })
}

fn compare(arg: &ArgRule) -> Result<ScmpArgCompare> {
    let op = match arg.op.as_str() {
        "SCMP_CMP_NE" => ScmpCompareOp::NotEqual,
        "SCMP_CMP_LT" => ScmpCompareOp::Less,
        "SCMP_CMP_LE" => ScmpCompareOp::LessOrEqual,
        "SCMP_CMP_EQ" => ScmpCompareOp::Equal,
        "SCMP_CMP_GE" => ScmpCompareOp::GreaterEqual,
        "SCMP_CMP_GT" => ScmpCompareOp::Greater,
        // OCI: `value` is the mask, `valueTwo` the value to compare with.
        "SCMP_CMP_MASKED_EQ" => {
            return Ok(ScmpArgCompare::new(
                arg.index,
                ScmpCompareOp::MaskedEqual(arg.value),
                arg.value_two,
            ))
        }
        other => bail!("unknown comparison {other:?}"),
    };
    Ok(ScmpArgCompare::new(arg.index, op, arg.value))
}

/// Compiles an OCI seccomp profile for the native architecture. System
/// calls this libseccomp does not know are skipped, as runc does, so one
/// profile serves several kernel generations.
pub fn compile_to_bpf(json: &str) -> Result<Vec<u8>> {
    let profile: Profile = serde_json::from_str(json).context("not a valid OCI seccomp profile")?;
    let default =
        action(&profile.default_action, profile.default_errno_ret).context("defaultAction")?;
    let mut ctx = ScmpFilterContext::new(default).context("creating the seccomp filter")?;
    if !profile.architectures.is_empty() {
        let native = ScmpArch::native();
        let mut keep_native = false;
        for name in &profile.architectures {
            let a = arch(name).context("architectures")?;
            if a == native {
                keep_native = true;
            } else {
                ctx.add_arch(a)
                    .with_context(|| format!("adding architecture {name}"))?;
            }
        }
        if !keep_native {
            ctx.remove_arch(native)
                .context("removing the native architecture")?;
        }
    }
    // A system call from an architecture the profile does not list is an
    // attack (i386 calls from a 64-bit process), never a fallback.
    // A binary tree over syscall numbers: short paths at run time, and a
    // cheap action-cache build in the kernel when the filter is installed.
    ctx.set_ctl_optimize(2)
        .context("enabling the binary-tree optimization")?;
    ctx.set_act_badarch(ScmpAction::KillProcess)
        .context("setting the bad-architecture action")?;
    for (i, rule) in profile.syscalls.iter().enumerate() {
        let act = action(&rule.action, rule.errno_ret)
            .with_context(|| format!("syscalls[{i}].action"))?;
        let cmps = rule
            .args
            .iter()
            .map(compare)
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("syscalls[{i}].args"))?;
        for name in &rule.names {
            let Ok(sys) = ScmpSyscall::from_name(name) else {
                continue;
            };
            if act == default && cmps.is_empty() {
                continue;
            }
            ctx.add_rule_conditional(act, sys, &cmps)
                .with_context(|| format!("syscalls[{i}]: rule for {name}"))?;
        }
    }
    export(&ctx)
}

fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>> {
    let (mut reader, writer) = std::io::pipe().context("creating a pipe for the BPF export")?;
    ctx.export_bpf(&writer)
        .context("exporting the seccomp filter")?;
    drop(writer);
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .context("reading the BPF export")?;
    Ok(bytes)
}
