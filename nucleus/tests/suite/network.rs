//! `--network` and `--dns`: the default namespace is tested in defaults.rs;
//! here the host's network (only when confirmed, never in strict-agent),
//! the resolvers written into the root, and the bridge options' form (the
//! bridge itself: tests/bridge.rs, in network namespaces of its own).

use super::bad_input::refused;
use super::harness::{attempt, host_namespace, report, Identity, Nucleus};

as_root_and_user!(
    host_network_shares_the_hosts_namespace,
    dns_writes_the_sandboxs_resolv_conf,
    bridge_needs_root,
);

fn host_network_shares_the_hosts_namespace(id: &Identity) {
    let r = report(id, &["--network", "host", "--allow-host-network"]);
    assert_eq!(r["namespaces"]["net"], host_namespace("net"));
    // The others stay new.
    for ns in ["user", "mnt", "pid", "uts", "ipc"] {
        assert_ne!(r["namespaces"][ns], host_namespace(ns), "{ns}");
    }
}

fn dns_writes_the_sandboxs_resolv_conf(id: &Identity) {
    let flags = ["--dns", "192.0.2.53", "--dns", "2001:db8::53"];
    let read = attempt(id, &flags, &["read", "/etc/resolv.conf"]);
    assert!(read.ok, "{}", read.detail);
    assert_eq!(
        read.detail,
        "nameserver 192.0.2.53\nnameserver 2001:db8::53\n"
    );
    let write = attempt(id, &flags, &["write", "/etc/resolv.conf"]);
    assert!(!write.ok, "the root stays read-only");
}

#[test]
fn host_network_must_be_confirmed() {
    let line = refused(&["--network", "host"], "--allow-host-network");
    assert!(line.contains("--network host"), "{line}");
}

#[test]
fn host_network_is_refused_in_strict_agent_mode() {
    refused(
        &[
            "--service-mode",
            "strict-agent",
            "--network",
            "host",
            "--allow-host-network",
        ],
        "--network host is only for agent mode",
    );
}

#[test]
fn unknown_network_modes_are_refused() {
    refused(&["--network", "bogus"], "--network bogus");
}

#[test]
fn bad_resolvers_are_refused() {
    refused(&["--dns", "not-an-ip"], "--dns not-an-ip");
    refused(&["--dns", "300.1.1.1"], "--dns 300.1.1.1");
    refused(
        &[
            "--dns",
            "192.0.2.1",
            "--dns",
            "192.0.2.2",
            "--dns",
            "192.0.2.3",
            "--dns",
            "192.0.2.4",
        ],
        "--dns: at most 3",
    );
    refused(&["--rootfs", "/", "--dns", "192.0.2.1"], "--dns");
}

#[test]
fn bad_bridge_options_are_refused() {
    for (flag, value, named) in [
        ("--subnet", "10.88.0.1/16", "--subnet 10.88.0.1/16"),
        ("--subnet", "10.88.0.0/31", "--subnet 10.88.0.0/31"),
        ("--subnet", "10.88.0.0", "--subnet 10.88.0.0"),
        ("--subnet", "fd00::/64", "--subnet fd00::/64"),
        ("--bridge", "Bad!", "--bridge Bad!"),
        (
            "--bridge",
            "much-too-long-name",
            "--bridge much-too-long-name",
        ),
    ] {
        refused(&["--network", "bridge", flag, value], named);
    }
    for misplaced in [
        &["--bridge", "nucleus0"][..],
        &["--subnet", "10.0.0.0/8"],
        &["--nat-backend", "pasta"],
        &["-p", "8080:80"],
        &["--egress-allow", "10.0.0.0/8"],
    ] {
        refused(misplaced, "needs --network bridge");
    }
    refused(
        &["--network", "bridge", "--nat-backend", "bogus"],
        "--nat-backend bogus",
    );
    refused(
        &[
            "--network",
            "bridge",
            "--nat-backend",
            "pasta",
            "--subnet",
            "10.9.0.0/16",
        ],
        "--bridge and --subnet are for the kernel backend",
    );
    for bad in [
        "80",
        "0:80",
        "8080:65536",
        "300.1.1.1:8080:80",
        "8080:80/sctp",
    ] {
        refused(&["--network", "bridge", "-p", bad], &format!("-p {bad}"));
    }
    refused(
        &["--network", "bridge", "-p", "8080:80", "-p", "8080:81"],
        "published twice",
    );
    let bridge = ["--network", "bridge"];
    for (flag, value) in [
        ("--egress-allow", "10.0.0.1/8"),
        ("--egress-allow", "example.com"),
        ("--egress-allow", "10.0.0.0/40"),
        ("--egress-tcp-port", "0"),
        ("--egress-udp-port", "65536"),
    ] {
        refused(
            &[&bridge[..], &[flag, value]].concat(),
            &format!("{flag} {value}"),
        );
    }
}

fn bridge_needs_root(id: &Identity) {
    if id.uid == 0 {
        return;
    }
    Nucleus::bare(id)
        .args(["--network", "bridge", "--nat-backend", "kernel"])
        .run(&["true"])
        .assert_refused("a Linux bridge needs root");
}
