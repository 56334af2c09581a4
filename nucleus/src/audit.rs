//! `--audit-log FILE|journal`: one JSON object per line for every security
//! decision of a run, written by the front end as the caller: the mode,
//! the plan's digest and what it applies (seccomp program, Landlock, ids,
//! network and egress, hardening), what was degraded and why, and how the
//! sandbox ended. To a file (appended, 0600) or to journald, where each
//! line is the MESSAGE and the event a field of its own.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use anyhow::{Context, Result};
use protocol::{NatBackend, NetworkMode, Plan, PlanDigest, SeccompMode};

use crate::policy::{Kind, PolicySpec};
use sha2::{Digest, Sha256};

const JOURNAL: &str = "/run/systemd/journal/socket";

pub struct AuditLog {
    sink: Sink,
}

enum Sink {
    File(File),
    Journal(UnixDatagram),
}

/// A JSON value, as much as the audit lines need.
pub enum Json {
    Str(String),
    Num(u64),
    Bool(bool),
    List(Vec<String>),
}

impl Json {
    fn write(&self, out: &mut String) {
        match self {
            Json::Str(s) => quote(s, out),
            Json::Num(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    quote(item, out);
                }
                out.push(']');
            }
        }
    }
}

/// A JSON string, escaped as serde_json escapes it.
fn quote(s: &str, out: &mut String) {
    // Serializing a str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// One line: `{"time":…,"event":…,…}`.
pub fn line(time: f64, event: &str, fields: &[(&str, Json)]) -> String {
    let mut out = format!("{{\"time\":{time:.3},\"event\":");
    quote(event, &mut out);
    for (key, value) in fields {
        out.push(',');
        quote(key, &mut out);
        out.push(':');
        value.write(&mut out);
    }
    out.push('}');
    out
}

impl AuditLog {
    /// `journal`, or a file path.
    pub fn open(target: &Path) -> Result<AuditLog> {
        let sink = if target.as_os_str() == "journal" {
            let sock = UnixDatagram::unbound().context("--audit-log journal")?;
            sock.connect(JOURNAL)
                .with_context(|| format!("--audit-log journal: connecting to {JOURNAL}"))?;
            Sink::Journal(sock)
        } else {
            let file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(target)
                .with_context(|| format!("--audit-log {}", target.display()))?;
            Sink::File(file)
        };
        Ok(AuditLog { sink })
    }

    /// Writes one event; an audit line that cannot be written stops the
    /// run (a caller who asked for the log gets it or nothing).
    pub fn record(&mut self, event: &str, fields: &[(&str, Json)]) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let text = line(now, event, fields);
        match &mut self.sink {
            Sink::File(file) => file
                .write_all(format!("{text}\n").as_bytes())
                .context("writing the audit log"),
            Sink::Journal(sock) => {
                let entry =
                    format!("SYSLOG_IDENTIFIER=nucleus\nNUCLEUS_EVENT={event}\nMESSAGE={text}\n");
                sock.send(entry.as_bytes())
                    .map(drop)
                    .context("writing the audit log to journald")
            }
        }
    }
}

/// The policy files given (and their pins), as the "start" event says them.
pub fn policy_files(spec: &PolicySpec) -> Vec<String> {
    [
        (Kind::Seccomp, &spec.seccomp),
        (Kind::Caps, &spec.caps),
        (Kind::Landlock, &spec.landlock),
    ]
    .into_iter()
    .filter_map(|(kind, pinned)| {
        let file = pinned.file.as_ref()?;
        let pin = pinned.sha256.map_or(String::new(), |h| {
            format!(" sha256:{}", crate::policy::hex(&h))
        });
        Some(format!("{} {}{pin}", kind.flag(), file.display()))
    })
    .collect()
}

/// What the plan applies, as the "start" event's fields.
pub fn plan_fields(plan: &Plan, via_helper: bool) -> Result<Vec<(&'static str, Json)>> {
    let digest = PlanDigest::of_bytes(&plan.encode()?);
    let seccomp: Vec<u8> = plan
        .security
        .seccomp
        .instructions()
        .iter()
        .flat_map(|i| {
            let mut b = i.code.to_le_bytes().to_vec();
            b.extend([i.jt, i.jf]);
            b.extend(i.k.to_le_bytes());
            b
        })
        .collect();
    let network = match &plan.network {
        NetworkMode::None => "none".to_owned(),
        NetworkMode::Host => "host".to_owned(),
        NetworkMode::Bridge(b) => match &b.backend {
            NatBackend::Kernel(k) => format!("bridge kernel {} {}", k.name.as_str(), k.subnet),
            NatBackend::Pasta => "bridge pasta".to_owned(),
            NatBackend::Slirp4netns => "bridge slirp4netns".to_owned(),
        },
    };
    let egress = match &plan.network {
        NetworkMode::Bridge(b) => b.egress.as_ref().map(|e| {
            e.allow
                .iter()
                .map(ToString::to_string)
                .chain(e.domains.iter().map(ToString::to_string))
                .collect()
        }),
        _ => None,
    };
    let mut degraded = Vec::new();
    if plan.security.allow_degraded {
        degraded.push(
            "--allow-degraded-security: a mechanism the kernel lacks is skipped with a warning"
                .to_owned(),
        );
    }
    if plan.security.allow_chroot_fallback {
        degraded.push("--allow-chroot-fallback: chroot if pivot_root fails".to_owned());
    }
    Ok(vec![
        ("mode", Json::Str(plan.mode.to_string())),
        ("plan_digest", Json::Str(format!("sha256:{digest}"))),
        (
            "executor",
            Json::Str(if via_helper { "helper" } else { "in-process" }.to_owned()),
        ),
        (
            "uid_map",
            Json::List(
                plan.ids
                    .uid_map
                    .iter()
                    .map(|m| format!("{} {} {}", m.inside(), m.outside(), m.count()))
                    .collect(),
            ),
        ),
        (
            "seccomp_sha256",
            Json::Str(crate::policy::hex(&Sha256::digest(&seccomp))),
        ),
        ("seccomp_instructions", Json::Num(seccomp.len() as u64 / 8)),
        ("seccomp_log_denied", Json::Bool(plan.security.log_denied)),
        (
            "seccomp_mode",
            Json::Str(
                match plan.security.seccomp_mode {
                    SeccompMode::Enforce => "enforce",
                    SeccompMode::Trace => "trace",
                    SeccompMode::Report => "report",
                }
                .to_owned(),
            ),
        ),
        (
            "capabilities",
            Json::Str(format!(
                "bounding {:#x} ambient {:#x}",
                plan.security.capabilities.bounding().bits(),
                plan.security.capabilities.ambient().bits()
            )),
        ),
        (
            "landlock",
            Json::Str(format!("{:?}", plan.security.landlock.enforcement)),
        ),
        (
            "landlock_rules",
            Json::Num(plan.security.landlock.rules.len() as u64),
        ),
        ("network", Json::Str(network)),
        (
            "egress_allow",
            egress.map_or(Json::Str("open".to_owned()), Json::List),
        ),
        ("init", Json::Bool(plan.process.init)),
        ("hide_pids", Json::Bool(plan.hardening.hide_pids)),
        ("mount_audit", Json::Bool(plan.hardening.audit_mounts)),
        ("degraded", Json::List(degraded)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_escapes() {
        let text = line(
            12.5,
            "start",
            &[
                ("mode", Json::Str("agent".into())),
                ("why", Json::Str("a \"quoted\"\nline\u{1}".into())),
                ("n", Json::Num(3)),
                ("ok", Json::Bool(true)),
                ("list", Json::List(vec!["a".into(), "b\\c".into()])),
            ],
        );
        assert_eq!(
            text,
            r#"{"time":12.500,"event":"start","mode":"agent","why":"a \"quoted\"\nline\u0001","n":3,"ok":true,"list":["a","b\\c"]}"#
        );
    }

    #[test]
    fn the_plan_is_described_with_its_digest() {
        let plan = protocol::testing::sample_plan();
        let fields = plan_fields(&plan, false).unwrap();
        let text = line(0.0, "start", &fields);
        assert!(text.contains(r#""mode":"agent""#), "{text}");
        assert!(text.contains(r#""plan_digest":"sha256:"#), "{text}");
        assert!(text.contains(r#""network":"none""#), "{text}");
        assert!(text.contains(r#""egress_allow":"open""#), "{text}");
        assert!(text.contains(r#""degraded":[]"#), "{text}");
    }
}
