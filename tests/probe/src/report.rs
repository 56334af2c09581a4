//! `nucleus-probe report`: one JSON object describing the process's view of
//! the sandbox. Every piece that cannot be read becomes `null` (or a
//! negative errno where the field is numeric by contract); nothing aborts.

use std::fs;

use crate::json::{Json, ObjBuilder};
use crate::mountinfo::{parse_mountinfo, status_field};
use crate::sys;

const NAMESPACES: [&str; 8] = ["user", "mnt", "pid", "uts", "ipc", "net", "cgroup", "time"];

/// Gathers the whole report. Open fds are listed first, before the report
/// opens any file of its own.
pub fn build() -> Json {
    let open_fds = open_fds();
    let (uid, gid, euid, egid) = sys::ids();
    let status = fs::read_to_string("/proc/self/status").ok();
    let status = status.as_deref();

    let mut r = ObjBuilder::new();
    r.push("uid", uid);
    r.push("gid", gid);
    r.push("euid", euid);
    r.push("egid", egid);
    r.push(
        "groups",
        match sys::groups() {
            Ok(g) => Json::Arr(g.into_iter().map(Json::from).collect()),
            Err(_) => Json::Null,
        },
    );
    r.push("uid_map", Json::opt(read_trimmed("/proc/self/uid_map")));
    r.push("gid_map", Json::opt(read_trimmed("/proc/self/gid_map")));
    r.push("caps", caps(status));
    r.push("no_new_privs", status_int(status, "NoNewPrivs"));
    r.push("seccomp", status_int(status, "Seccomp"));
    r.push(
        "seccomp_filters",
        match status {
            Some(s) => Json::Int(int_field(s, "Seccomp_filters").unwrap_or(-1)),
            None => Json::Null,
        },
    );
    r.push("sig_blk", status_str(status, "SigBlk"));
    r.push("sig_ign", status_str(status, "SigIgn"));
    r.push(
        "landlock_abi",
        match sys::landlock_abi() {
            Ok(v) => v,
            Err(e) => -i64::from(e.0),
        },
    );
    r.push("pid", std::process::id());
    r.push("ppid", std::os::unix::process::parent_id());
    r.push("hostname", Json::opt(sys::hostname().ok()));
    r.push(
        "cwd",
        Json::opt(
            std::env::current_dir()
                .ok()
                .map(|p| p.to_string_lossy().into_owned()),
        ),
    );
    r.push("namespaces", namespaces());
    r.push("mounts", mounts());
    r.push("env", env());
    r.push("open_fds", open_fds);
    r.push("net_interfaces", net_interfaces());
    r.build()
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read(path)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
}

fn int_field(status: &str, key: &str) -> Option<i64> {
    status_field(status, key).and_then(|v| v.parse().ok())
}

fn status_int(status: Option<&str>, key: &str) -> Json {
    Json::opt(status.and_then(|s| int_field(s, key)))
}

fn status_str(status: Option<&str>, key: &str) -> Json {
    Json::opt(status.and_then(|s| status_field(s, key)))
}

fn caps(status: Option<&str>) -> Json {
    let mut caps = ObjBuilder::new();
    for (name, key) in [
        ("inh", "CapInh"),
        ("prm", "CapPrm"),
        ("eff", "CapEff"),
        ("bnd", "CapBnd"),
        ("amb", "CapAmb"),
    ] {
        caps.push(name, status_str(status, key));
    }
    caps.build()
}

fn namespaces() -> Json {
    let mut ns = ObjBuilder::new();
    for name in NAMESPACES {
        let link = fs::read_link(format!("/proc/self/ns/{name}"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        ns.push(name, Json::opt(link));
    }
    ns.build()
}

fn mounts() -> Json {
    let Ok(text) = fs::read("/proc/self/mountinfo") else {
        return Json::Null;
    };
    let text = String::from_utf8_lossy(&text);
    let entries = parse_mountinfo(&text).into_iter().map(|m| {
        ObjBuilder::new()
            .field("target", m.target)
            .field("fstype", m.fstype)
            .field("source", m.source)
            .field("mount_opts", m.mount_opts)
            .field("super_opts", m.super_opts)
            .build()
    });
    Json::Arr(entries.collect())
}

fn env() -> Json {
    let vars = std::env::vars_os().map(|(k, v)| {
        (
            k.to_string_lossy().into_owned(),
            Json::Str(v.to_string_lossy().into_owned()),
        )
    });
    Json::Obj(vars.collect())
}

/// Entries of /proc/self/fd, minus the directory fd used to list them:
/// that one is closed once the listing is dropped, so only descriptors
/// still open afterwards are kept.
fn open_fds() -> Json {
    let names: Vec<i32> = match fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => return Json::Null,
    };
    let mut fds: Vec<i32> = names
        .into_iter()
        .filter(|&fd| sys::fd_is_open(fd))
        .collect();
    fds.sort_unstable();
    Json::Arr(fds.into_iter().map(Json::from).collect())
}

/// Interface names come from /proc/self/net/dev, which always shows the
/// caller's network namespace; /sys/class/net shows the namespace of
/// whoever mounted sysfs, so it is used only where procfs is unreadable.
/// Flags come from SIOCGIFFLAGS in our namespace, else from sysfs.
fn net_interfaces() -> Json {
    let names = match fs::read_to_string("/proc/self/net/dev") {
        Ok(text) => proc_net_dev_names(&text),
        Err(_) => sysfs_net_names().unwrap_or_default(),
    };
    let ifaces = names.into_iter().map(|name| {
        let (flags, source) = match sys::iface_flags(&name) {
            Ok(f) => (Some(f), "ioctl"),
            Err(_) => (sysfs_flags(&name), "sysfs"),
        };
        let up = flags.map(|f| f & (libc::IFF_UP as u32) != 0);
        ObjBuilder::new()
            .field("name", name)
            .field("up", Json::opt(up))
            .field("flags", Json::opt(flags))
            .field(
                "flags_source",
                if flags.is_some() { source } else { "none" },
            )
            .build()
    });
    Json::Arr(ifaces.collect())
}

/// Interface names from /proc/net/dev: the text before ':' on every line
/// after the two header lines.
pub fn proc_net_dev_names(text: &str) -> Vec<String> {
    text.lines()
        .skip(2)
        .filter_map(|line| Some(line.split_once(':')?.0.trim().to_owned()))
        .filter(|name| !name.is_empty())
        .collect()
}

fn sysfs_net_names() -> Option<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir("/sys/class/net")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    Some(names)
}

fn sysfs_flags(name: &str) -> Option<u32> {
    let text = fs::read_to_string(format!("/sys/class/net/{name}/flags")).ok()?;
    let hex = text.trim();
    u32::from_str_radix(hex.strip_prefix("0x").unwrap_or(hex), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_dev() {
        let text =
            "Inter-|   Receive |  Transmit\n face |bytes packets\n    lo: 1 2 3\n  eth0:4 5 6\n";
        assert_eq!(proc_net_dev_names(text), vec!["lo", "eth0"]);
    }

    #[test]
    fn report_is_an_object_with_the_contract_keys() {
        let report = build();
        let keys: Vec<&str> = match &report {
            Json::Obj(fields) => fields.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        };
        for key in [
            "uid",
            "gid",
            "euid",
            "egid",
            "groups",
            "uid_map",
            "gid_map",
            "caps",
            "no_new_privs",
            "seccomp",
            "seccomp_filters",
            "landlock_abi",
            "pid",
            "ppid",
            "hostname",
            "cwd",
            "namespaces",
            "mounts",
            "env",
            "open_fds",
            "net_interfaces",
        ] {
            assert!(keys.contains(&key), "missing {key}");
        }
    }
}
