//! The probe's JSON: one attempt, or the whole report.

use std::fs;

use serde_json::Value;

use super::{Identity, Nucleus};

/// One `nucleus-probe try` result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub ok: bool,
    pub errno: Option<i32>,
    pub detail: String,
}

/// Runs `nucleus run FLAGS -- probe try ARGS` as `id`; nucleus must exit 0.
pub fn attempt(id: &Identity, flags: &[&str], args: &[&str]) -> Attempt {
    let mut probe_args = vec!["try"];
    probe_args.extend_from_slice(args);
    let out = Nucleus::new(id).args(flags).probe(&probe_args);
    out.assert_code(0);
    let v = out.json();
    assert_eq!(v["attempt"], args[0], "attempt name\n{out}");
    Attempt {
        ok: v["ok"].as_bool().unwrap_or_else(|| panic!("no ok\n{out}")),
        errno: v["errno"].as_i64().and_then(|e| i32::try_from(e).ok()),
        detail: v["detail"].as_str().unwrap_or_default().to_owned(),
    }
}

/// The attempt fails with exactly `errno`.
pub fn assert_denied(id: &Identity, flags: &[&str], args: &[&str], errno: i32) {
    let a = attempt(id, flags, args);
    assert_eq!(
        (a.ok, a.errno),
        (false, Some(errno)),
        "as {}: try {args:?} (flags {flags:?}) should fail with errno {errno}: {a:?}",
        id.name
    );
}

/// `nucleus run FLAGS -- probe report` as `id`; nucleus must exit 0.
pub fn report(id: &Identity, flags: &[&str]) -> Value {
    let out = Nucleus::new(id).args(flags).probe(&["report"]);
    out.assert_code(0);
    out.json()
}

/// The namespace links of this (the test) process, e.g. `user:[4026531837]`.
pub fn host_namespace(name: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{name}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|e| panic!("reading /proc/self/ns/{name}: {e}"))
}

/// Whitespace-separated fields, so `"0   1001   1"` compares as `"0 1001 1"`.
pub fn words(s: &Value) -> String {
    s.as_str()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
