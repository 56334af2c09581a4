//! OCI seccomp profiles (JSON) compiled to BPF with libseccomp. The plan
//! carries only the compiled program; nothing past the front end parses
//! a profile.

use std::io::Read;

use anyhow::{Context, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::Deserialize;

/// An OCI seccomp profile (`config.json`'s `linux.seccomp`). Every name is
/// checked while parsing, so an error carries the position of its value.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    #[serde(default, rename = "comment")]
    _comment: Option<String>,
    default_action: Action,
    #[serde(default)]
    default_errno_ret: Option<Errno>,
    #[serde(default)]
    architectures: Vec<Arch>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rule {
    #[serde(default, rename = "comment")]
    _comment: Option<String>,
    names: Vec<String>,
    action: Action,
    #[serde(default)]
    errno_ret: Option<Errno>,
    #[serde(default)]
    args: Vec<ArgRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ArgRule {
    index: ArgIndex,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: CompareOp,
}

/// An errno for `SCMP_ACT_ERRNO`: 1 to 4095 (what the C library takes for
/// an error; 0 would make a denied call look successful).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "u32")]
struct Errno(u16);

impl TryFrom<u32> for Errno {
    type Error = String;

    fn try_from(errno: u32) -> Result<Self, Self::Error> {
        match u16::try_from(errno) {
            Ok(e @ 1..=4095) => Ok(Errno(e)),
            _ => Err(format!("errno {errno} is out of range: use 1 to 4095")),
        }
    }
}

/// A system call argument: 0 to 5.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "u32")]
struct ArgIndex(u32);

impl TryFrom<u32> for ArgIndex {
    type Error = String;

    fn try_from(i: u32) -> Result<Self, Self::Error> {
        if i > 5 {
            return Err(format!(
                "argument index {i} is out of range: system calls have arguments 0 to 5"
            ));
        }
        Ok(ArgIndex(i))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Action {
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_KILL", alias = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum Arch {
    #[serde(rename = "SCMP_ARCH_X86_64")]
    X8664,
    #[serde(rename = "SCMP_ARCH_X86")]
    X86,
    #[serde(rename = "SCMP_ARCH_X32")]
    X32,
    #[serde(rename = "SCMP_ARCH_AARCH64")]
    Aarch64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum CompareOp {
    #[serde(rename = "SCMP_CMP_NE")]
    NotEqual,
    #[serde(rename = "SCMP_CMP_LT")]
    Less,
    #[serde(rename = "SCMP_CMP_LE")]
    LessOrEqual,
    #[serde(rename = "SCMP_CMP_EQ")]
    Equal,
    #[serde(rename = "SCMP_CMP_GE")]
    GreaterEqual,
    #[serde(rename = "SCMP_CMP_GT")]
    Greater,
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEqual,
}

const EPERM: u16 = 1;

fn action(action: Action, errno: Option<Errno>) -> ScmpAction {
    match action {
        Action::Allow => ScmpAction::Allow,
        Action::Errno => ScmpAction::Errno(i32::from(errno.map_or(EPERM, |e| e.0))),
        Action::KillThread => ScmpAction::KillThread,
        Action::KillProcess => ScmpAction::KillProcess,
        Action::Trap => ScmpAction::Trap,
        Action::Log => ScmpAction::Log,
    }
}

fn arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::X8664 => ScmpArch::X8664,
        Arch::X86 => ScmpArch::X86,
        Arch::X32 => ScmpArch::X32,
        Arch::Aarch64 => ScmpArch::Aarch64,
    }
}

fn compare(arg: &ArgRule) -> ScmpArgCompare {
    let op = match arg.op {
        CompareOp::NotEqual => ScmpCompareOp::NotEqual,
        CompareOp::Less => ScmpCompareOp::Less,
        CompareOp::LessOrEqual => ScmpCompareOp::LessOrEqual,
        CompareOp::Equal => ScmpCompareOp::Equal,
        CompareOp::GreaterEqual => ScmpCompareOp::GreaterEqual,
        CompareOp::Greater => ScmpCompareOp::Greater,
        // OCI: `value` is the mask, `valueTwo` the value to compare with.
        CompareOp::MaskedEqual => {
            return ScmpArgCompare::new(
                arg.index.0,
                ScmpCompareOp::MaskedEqual(arg.value),
                arg.value_two,
            )
        }
    };
    ScmpArgCompare::new(arg.index.0, op, arg.value)
}

/// Parses and compiles a profile (the build script's entry; the front end
/// parses with positions itself and calls [`compile`]).
#[allow(dead_code)]
pub fn compile_to_bpf(json: &str) -> Result<Vec<u8>> {
    let profile: Profile = serde_json::from_str(json).context("not a valid OCI seccomp profile")?;
    compile(&profile)
}

/// Compiles an OCI seccomp profile for the native architecture. System
/// calls this libseccomp does not know are skipped, as runc does, so one
/// profile serves several kernel generations.
pub fn compile(profile: &Profile) -> Result<Vec<u8>> {
    let default = action(profile.default_action, profile.default_errno_ret);
    let mut ctx = ScmpFilterContext::new(default).context("creating the seccomp filter")?;
    if !profile.architectures.is_empty() {
        let native = ScmpArch::native();
        let mut keep_native = false;
        for name in &profile.architectures {
            let a = arch(*name);
            if a == native {
                keep_native = true;
            } else {
                ctx.add_arch(a)
                    .with_context(|| format!("architectures: adding {name:?}"))?;
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
        let act = action(rule.action, rule.errno_ret);
        let cmps = rule.args.iter().map(compare).collect::<Vec<_>>();
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
