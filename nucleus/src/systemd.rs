//! cgroup limits for rootless sandboxes, through systemd: the sandbox's
//! process goes into a transient scope (`StartTransientUnit` over D-Bus)
//! of the caller's own user manager (the system manager for root), which
//! owns the cgroup and enforces `MemoryMax`, `CPUQuota` and `TasksMax`.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use protocol::{Limits, MemoryLimit};
use zbus::blocking::{Connection, Proxy};
use zbus::zvariant::{OwnedObjectPath, Value};

const DESTINATION: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long systemd may take to move the process into the scope.
const PLACEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A systemd property value, as the scope needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prop {
    U64(u64),
    Str(String),
    Pids(Vec<u32>),
}

/// The properties of the scope for `pid` with `limits`: exact, testable.
pub fn scope_properties(pid: u32, description: &str, limits: &Limits) -> Vec<(&'static str, Prop)> {
    let mut props = vec![
        ("Description", Prop::Str(description.to_owned())),
        ("PIDs", Prop::Pids(vec![pid])),
        // Remove the unit when it ends, even after an OOM kill: nothing is left behind.
        ("CollectMode", Prop::Str("inactive-or-failed".into())),
    ];
    if let Some(MemoryLimit::Bytes(bytes)) = limits.memory {
        props.push(("MemoryMax", Prop::U64(bytes)));
    }
    if let Some(cpus) = limits.cpus {
        // CPU time per second of wall time, in microseconds.
        props.push((
            "CPUQuotaPerSecUSec",
            Prop::U64(u64::from(cpus.get()) * 1000),
        ));
    }
    if let Some(pids) = limits.pids {
        props.push(("TasksMax", Prop::U64(u64::from(pids.get()))));
    }
    if let Some(weight) = limits.io_weight {
        props.push(("IOWeight", Prop::U64(u64::from(weight.get()))));
    }
    props
}

#[derive(Debug)]
pub struct Manager {
    conn: Connection,
}

impl Manager {
    /// The manager that can hold the caller's sandboxes: the user's own
    /// (session bus), or the system's for root. Fails fast when there is
    /// none (no bus, or no systemd on it).
    pub fn connect(root: bool) -> Result<Manager> {
        let conn = if root {
            Connection::system()
        } else {
            Connection::session()
        }
        .context("no D-Bus connection to a systemd manager")?;
        let proxy = Proxy::new(&conn, DESTINATION, PATH, "org.freedesktop.DBus.Peer")?;
        proxy
            .call_method("Ping", &())
            .context("systemd does not answer on the bus")?;
        Ok(Manager { conn })
    }

    /// Moves `pid` into a new scope with `limits` and waits until it is there.
    pub fn place(&self, pid: u32, name: &str, limits: &Limits) -> Result<()> {
        let unit = format!("nucleus-{name}-{pid}.scope");
        let props = scope_properties(pid, &format!("nucleus sandbox {name}"), limits);
        let values: Vec<(&str, Value<'_>)> = props
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Prop::U64(n) => Value::from(*n),
                    Prop::Str(s) => Value::from(s.as_str()),
                    Prop::Pids(p) => Value::from(p.clone()),
                };
                (*k, value)
            })
            .collect();
        let aux: Vec<(&str, Vec<(&str, Value<'_>)>)> = Vec::new();
        let proxy = Proxy::new(&self.conn, DESTINATION, PATH, MANAGER)?;
        let _job: OwnedObjectPath = proxy
            .call("StartTransientUnit", &(unit.as_str(), "fail", values, aux))
            .with_context(|| format!("starting {unit}"))?;
        wait_in_cgroup(pid, &unit)
    }
}

/// Polls `/proc/PID/cgroup` until the process is in `unit`.
fn wait_in_cgroup(pid: u32, unit: &str) -> Result<()> {
    let start = Instant::now();
    let file = format!("/proc/{pid}/cgroup");
    loop {
        let cgroup = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
        if cgroup.lines().any(|l| l.ends_with(&format!("/{unit}"))) {
            return Ok(());
        }
        if start.elapsed() > PLACEMENT_TIMEOUT {
            return Err(anyhow!(
                "systemd did not move the sandbox into {unit} within {PLACEMENT_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{MilliCpus, PidsLimit};

    #[test]
    fn scope_properties_are_exact() {
        let limits = Limits {
            timeout: None,
            memory: Some(MemoryLimit::Bytes(64 << 20)),
            cpus: Some(MilliCpus::try_from(1500).unwrap()),
            pids: Some(PidsLimit::try_from(32).unwrap()),
            io_weight: None,
        };
        assert_eq!(
            scope_properties(42, "d", &limits),
            vec![
                ("Description", Prop::Str("d".into())),
                ("PIDs", Prop::Pids(vec![42])),
                ("CollectMode", Prop::Str("inactive-or-failed".into())),
                ("MemoryMax", Prop::U64(64 << 20)),
                ("CPUQuotaPerSecUSec", Prop::U64(1_500_000)),
                ("TasksMax", Prop::U64(32)),
            ]
        );
    }

    #[test]
    fn memory_max_sets_no_ceiling() {
        let limits = Limits {
            timeout: None,
            memory: Some(MemoryLimit::Max),
            cpus: None,
            pids: None,
            io_weight: None,
        };
        assert_eq!(scope_properties(1, "d", &limits).len(), 3);
    }
}
