//! What every sandbox gets without options: no capabilities, no_new_privs,
//! seccomp, its own namespaces and the default root.

use std::collections::BTreeSet;

use serde_json::Value;

use super::harness::{host_namespace, report, words, Identity};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const ZERO_CAPS: &str = "0000000000000000";

as_root_and_user!(
    no_capabilities_in_any_set,
    no_new_privs_and_seccomp_filter,
    uid_zero_maps_to_the_caller,
    hostname_is_nucleus,
    namespaces_are_new_except_time,
    time_namespace_on_request,
    root_is_a_read_only_tmpfs,
    usr_is_read_only_nosuid_nodev,
    tmp_is_a_writable_tmpfs,
    kernel_filesystems_are_fresh_and_read_only,
    network_is_loopback_only_and_up,
    only_stdio_is_open,
    environment_is_path_and_home_only,
    workload_is_pid_1,
);

fn no_capabilities_in_any_set(id: &Identity) {
    let r = report(id, &[]);
    for set in ["inh", "prm", "eff", "bnd", "amb"] {
        assert_eq!(r["caps"][set], ZERO_CAPS, "cap set {set}: {}", r["caps"]);
    }
}

fn no_new_privs_and_seccomp_filter(id: &Identity) {
    let r = report(id, &[]);
    assert_eq!(r["no_new_privs"], 1);
    // 2: SECCOMP_MODE_FILTER.
    assert_eq!(r["seccomp"], 2);
}

fn uid_zero_maps_to_the_caller(id: &Identity) {
    let r = report(id, &[]);
    assert_eq!((&r["uid"], &r["gid"]), (&Value::from(0), &Value::from(0)));
    assert_eq!(words(&r["uid_map"]), format!("0 {} 1", id.uid));
    assert_eq!(words(&r["gid_map"]), format!("0 {} 1", id.gid));
    assert_eq!(r["groups"], Value::Array(Vec::new()));
}

fn hostname_is_nucleus(id: &Identity) {
    assert_eq!(report(id, &[])["hostname"], "nucleus");
}

fn namespaces_are_new_except_time(id: &Identity) {
    let r = report(id, &[]);
    for ns in ["user", "mnt", "pid", "uts", "ipc", "net", "cgroup"] {
        let inside = r["namespaces"][ns].as_str().unwrap_or_default();
        assert!(inside.starts_with(&format!("{ns}:[")), "{ns}: {inside:?}");
        assert_ne!(inside, host_namespace(ns), "{ns} namespace is the host's");
    }
    assert_eq!(r["namespaces"]["time"], host_namespace("time"));
}

fn time_namespace_on_request(id: &Identity) {
    let r = report(id, &["--time-namespace"]);
    let inside = r["namespaces"]["time"].as_str().unwrap_or_default();
    assert!(inside.starts_with("time:["), "{inside:?}");
    assert_ne!(inside, host_namespace("time"));
}

/// The topmost mount at `target`.
fn mount<'a>(r: &'a Value, target: &str) -> &'a Value {
    r["mounts"]
        .as_array()
        .and_then(|m| m.iter().rfind(|e| e["target"] == target))
        .unwrap_or_else(|| panic!("no mount at {target}: {}", r["mounts"]))
}

fn opts(m: &Value) -> BTreeSet<&str> {
    m["mount_opts"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .collect()
}

fn assert_opts(r: &Value, target: &str, fstype: Option<&str>, wanted: &[&str]) {
    let m = mount(r, target);
    if let Some(fstype) = fstype {
        assert_eq!(m["fstype"], fstype, "{target}: {m}");
    }
    let have = opts(m);
    for o in wanted {
        assert!(have.contains(o), "{target} lacks {o}: {m}");
    }
}

fn root_is_a_read_only_tmpfs(id: &Identity) {
    assert_opts(&report(id, &[]), "/", Some("tmpfs"), &["ro"]);
}

fn usr_is_read_only_nosuid_nodev(id: &Identity) {
    assert_opts(&report(id, &[]), "/usr", None, &["ro", "nosuid", "nodev"]);
}

fn tmp_is_a_writable_tmpfs(id: &Identity) {
    let r = report(id, &[]);
    assert_opts(&r, "/tmp", Some("tmpfs"), &["rw", "nosuid", "nodev"]);
}

fn kernel_filesystems_are_fresh_and_read_only(id: &Identity) {
    let r = report(id, &[]);
    assert_opts(&r, "/proc", Some("proc"), &["nosuid", "nodev", "noexec"]);
    assert_opts(&r, "/proc/sys", Some("proc"), &["ro"]);
    assert_opts(&r, "/dev", Some("tmpfs"), &["ro", "nosuid"]);
    assert_opts(&r, "/dev/pts", Some("devpts"), &["nosuid", "noexec"]);
    assert_opts(
        &r,
        "/sys",
        Some("sysfs"),
        &["ro", "nosuid", "nodev", "noexec"],
    );
}

fn network_is_loopback_only_and_up(id: &Identity) {
    let r = report(id, &[]);
    let ifaces = r["net_interfaces"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = ifaces.iter().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(names, ["lo"], "{}", r["net_interfaces"]);
    assert_eq!(ifaces[0]["up"], true, "{}", r["net_interfaces"]);
}

fn only_stdio_is_open(id: &Identity) {
    assert_eq!(report(id, &[])["open_fds"], serde_json::json!([0, 1, 2]));
}

fn environment_is_path_and_home_only(id: &Identity) {
    let r = report(id, &[]);
    assert_eq!(
        r["env"],
        serde_json::json!({"PATH": DEFAULT_PATH, "HOME": "/tmp"}),
        "the caller's environment must not leak in"
    );
}

fn workload_is_pid_1(id: &Identity) {
    let r = report(id, &[]);
    assert_eq!((&r["pid"], &r["ppid"]), (&Value::from(1), &Value::from(0)));
}
