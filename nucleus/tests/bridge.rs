//! `--network bridge` (the kernel backend) as root, each test in a network
//! namespace of its own, held by a `sleep` and entered with nsenter: the
//! bridge, veths, leases and NAT rules never appear in the host's
//! namespace, and traffic goes only to addresses inside it. Its own test
//! binary: the namespaces' helper processes would trip the main suite's
//! no-leftover-children checks. Needs NUCLEUS_PROBE (see tests/run-all).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace of the test's own, and a directory standing in
/// for /run/nucleus (the leases) in the mount namespace nucleus runs in.
struct TestNet {
    holder: Child,
    netns: String,
    state: PathBuf,
}

impl TestNet {
    /// None (said loudly; a failure under NUCLEUS_REQUIRE_ALL=1) unless root.
    fn new() -> Option<TestNet> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: --network bridge tests need root");
            assert!(
                std::env::var_os("NUCLEUS_REQUIRE_ALL").is_none(),
                "NUCLEUS_REQUIRE_ALL=1: run as root"
            );
            return None;
        }
        let holder = Command::new("unshare")
            .args(["--net", "--", "sleep", "300"])
            .spawn()
            .unwrap();
        let netns = format!("--net=/proc/{}/ns/net", holder.id());
        let state = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "bridge-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).unwrap();
        let net = TestNet {
            holder,
            netns,
            state,
        };
        // unshare has made the namespace once the link list is ours.
        for _ in 0..200 {
            if net.links() == ["lo"] {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        net.inside(&["ip", "link", "set", "lo", "up"]);
        Some(net)
    }

    /// A command in the test namespace, which must succeed.
    fn inside(&self, cmd: &[&str]) -> String {
        let out = Command::new("nsenter")
            .arg(&self.netns)
            .arg("--")
            .args(cmd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `nucleus run --network bridge FLAGS -- CMD` inside the test
    /// namespace, with a /run of its own whose nucleus/ is the test's.
    fn nucleus(&self, flags: &[&str], cmd: &[&str]) -> Command {
        let probe = Path::new(&std::env::var("NUCLEUS_PROBE").expect("NUCLEUS_PROBE is set"))
            .parent()
            .unwrap()
            .to_owned();
        let mut c = Command::new("nsenter");
        c.arg(&self.netns)
            .args(["--", "unshare", "--mount", "--propagation", "private"])
            .args([
                "sh",
                "-c",
                "mount -t tmpfs tmpfs /run && mkdir /run/nucleus && \
                 mount --bind \"$0\" /run/nucleus && exec \"$@\"",
            ])
            .arg(&self.state)
            .arg(env!("CARGO_BIN_EXE_nucleus"))
            .args(["run", "--network", "bridge", "-v"])
            .arg(format!("{}:/probe:ro", probe.display()))
            .args(flags)
            .arg("--")
            .args(cmd)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, flags: &[&str], cmd: &[&str]) -> Output {
        self.nucleus(flags, cmd).output().unwrap()
    }

    fn leases(&self, bridge: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.state.join("leases").join(bridge))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn links(&self) -> Vec<String> {
        self.inside(&["ip", "-br", "link"])
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(|n| n.split('@').next().unwrap_or(n).to_owned())
            .collect()
    }

    fn nat_rules(&self) -> String {
        self.inside(&["iptables", "-w", "-t", "nat", "-S"])
            .lines()
            .filter(|l| l.contains("NUCLEUS"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn wait_for(&self, what: &str, done: impl Fn(&TestNet) -> bool) {
        for _ in 0..400 {
            if done(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("timed out waiting for {what}");
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The shared NAT rules, made once; nothing per sandbox stays.
const BASE_NAT_RULES: &str = "-N NUCLEUS-OUTPUT\n-N NUCLEUS-POSTROUTING\n-N NUCLEUS-PREROUTING\n\
     -A PREROUTING -m addrtype --dst-type LOCAL -j NUCLEUS-PREROUTING\n\
     -A OUTPUT -m addrtype --dst-type LOCAL -j NUCLEUS-OUTPUT\n\
     -A POSTROUTING -j NUCLEUS-POSTROUTING\n\
     -A NUCLEUS-POSTROUTING -s 10.88.0.0/16 ! -o nucleus0 -j MASQUERADE\n\
     -A NUCLEUS-POSTROUTING -s 127.0.0.0/8 -o nucleus0 -j MASQUERADE";

const ETH0: [&str; 6] = ["ip", "-br", "-4", "addr", "show", "eth0"];

#[test]
fn the_sandbox_gets_eth0_nat_and_nothing_stays_but_the_bridge() {
    let Some(net) = TestNet::new() else { return };
    let out = stdout(&net.run(
        &[],
        &[
            "sh",
            "-c",
            "ip -br -4 addr show eth0; ip route show default",
        ],
    ));
    assert!(out.contains("10.88.0.2/16"), "{out}");
    assert!(out.contains("default via 10.88.0.1 dev eth0"), "{out}");
    assert_eq!(net.links(), ["lo", "nucleus0"]);
    assert!(net.leases("nucleus0").is_empty());
    assert_eq!(net.nat_rules(), BASE_NAT_RULES);
    // The next sandbox adds no rule twice.
    stdout(&net.run(&[], &["true"]));
    assert_eq!(net.nat_rules(), BASE_NAT_RULES);
}

#[test]
fn another_bridge_and_subnet_on_request() {
    let Some(net) = TestNet::new() else { return };
    let out = stdout(&net.run(&["--bridge", "nt-br", "--subnet", "172.31.7.0/24"], &ETH0));
    assert!(out.contains("172.31.7.2/24"), "{out}");
    assert_eq!(net.links(), ["lo", "nt-br"]);
}

#[test]
fn the_sandbox_reaches_the_bridge_network() {
    let Some(net) = TestNet::new() else { return };
    stdout(&net.run(&[], &["true"]));
    // A server on the bridge's address, inside the test namespace only.
    let _server = serve(&net, &[18081]);
    assert_eq!(connect(&net, &[], "18081"), (true, None));
}

#[test]
fn leases_are_distinct_and_a_killed_sandboxs_is_taken_over() {
    let Some(net) = TestNet::new() else { return };
    let mut first = net
        .nucleus(&[], &["sleep", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    net.wait_for("the first sandbox on the bridge", |n| n.links().len() == 3);
    assert_eq!(net.leases("nucleus0"), ["10.88.0.2"]);
    let second = stdout(&net.run(&[], &ETH0));
    assert!(second.contains("10.88.0.3/16"), "{second}");
    // SIGKILL: nucleus cannot clean up. Its sandbox dies with it, and the
    // veth with the sandbox's namespace; the lease stays, stale.
    first.kill().unwrap();
    first.wait().unwrap();
    net.wait_for("the veth to go", |n| n.links().len() == 2);
    assert_eq!(net.leases("nucleus0"), ["10.88.0.2"]);
    let third = stdout(&net.run(&[], &ETH0));
    assert!(
        third.contains("10.88.0.2/16"),
        "the stale lease is taken over: {third}"
    );
    assert!(net.leases("nucleus0").is_empty());
}

#[test]
fn an_interface_that_is_not_our_bridge_is_refused_and_nothing_is_left() {
    let Some(net) = TestNet::new() else { return };
    let out = net.run(&["--bridge", "lo"], &["true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--bridge lo") && err.contains("not a bridge"),
        "{err}"
    );
    assert_eq!(net.links(), ["lo"]);
    assert!(net.leases("lo").is_empty());
    // A bridge of that name with another address is not ours either.
    net.inside(&["ip", "link", "add", "theirs", "type", "bridge"]);
    net.inside(&["ip", "addr", "add", "192.0.2.1/24", "dev", "theirs"]);
    let out = net.run(&["--bridge", "theirs"], &["true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without the address 10.88.0.1/16"), "{err}");
    assert_eq!(net.links(), ["lo", "theirs"]);
    assert!(net.leases("theirs").is_empty());
}

/// A process killed and reaped when dropped, even when a test fails (it
/// would hold the test runner's output open).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A python server in the test namespace, running `script` (which prints
/// `listening` once it is), until it is dropped.
fn python_server(net: &TestNet, script: &str) -> Killed {
    let mut server = Command::new("nsenter")
        .arg(&net.netns)
        .args(["--", "python3", "-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let server = Killed(server);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "listening");
    server
}

/// A server on the bridge's address for `ports`, inside the test
/// namespace, accepting until it is dropped.
fn serve(net: &TestNet, ports: &[u16]) -> Killed {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    python_server(
        net,
        &format!(
            "import socket, select\n\
             ls = []\n\
             for p in [{}]:\n\
             \x20   s = socket.socket(); s.bind(('10.88.0.1', p)); s.listen(8); ls.append(s)\n\
             print('listening', flush=True)\n\
             while True:\n\
             \x20   for s in select.select(ls, [], [], 60)[0]:\n\
             \x20       s.accept()[0].close()",
            ports.join(", ")
        ),
    )
}

/// The probe's connect attempt from a sandbox with `flags` to the
/// bridge's address: (ok, errno).
fn connect(net: &TestNet, flags: &[&str], port: &str) -> (bool, Option<i64>) {
    let out = probe_connect(net, flags, "10.88.0.1", port);
    let ok = out.contains("\"ok\":true");
    let errno = out
        .split("\"errno\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .and_then(|n| n.parse().ok());
    (ok, errno)
}

/// A connect whose SYN was dropped in the sandbox's OUTPUT chain: it
/// times out (a closed port would be refused at once).
const DROPPED: (bool, Option<i64>) = (false, Some(libc::ETIMEDOUT as i64));

/// Whether the probe's report says the connection timed out (its SYN
/// was dropped, not refused).
fn timed_out(report: &str) -> bool {
    report.contains(&format!("\"errno\":{}", libc::ETIMEDOUT))
}

#[test]
fn egress_lets_out_only_the_listed_networks_and_ports() {
    let Some(net) = TestNet::new() else { return };
    stdout(&net.run(&[], &["true"]));
    let server = serve(&net, &[18081, 18082]);
    // No policy: both ports.
    assert_eq!(connect(&net, &[], "18082"), (true, None));
    let policy = [
        "--egress-allow",
        "10.88.0.1/32",
        "--egress-tcp-port",
        "18081",
    ];
    assert_eq!(connect(&net, &policy, "18081"), (true, None));
    // Dropped in the sandbox's OUTPUT chain: the SYN never leaves, so the
    // connect times out (a closed port would be refused at once).
    assert_eq!(connect(&net, &policy, "18082"), DROPPED);
    let wider = ["--egress-allow", "0.0.0.0/0"];
    assert_eq!(connect(&net, &wider, "18082"), (true, None));
    let meta = probe_connect(&net, &wider, "169.254.169.254", "80");
    assert!(
        timed_out(&meta),
        "metadata stays closed under 0.0.0.0/0: {meta}"
    );
    drop(server);
    assert_eq!(net.links(), ["lo", "nucleus0"]);
    assert!(net.leases("nucleus0").is_empty());
}

/// Whether a TCP connection from the test namespace to `addr:port` gets a
/// byte back, retried while the sandbox's server starts.
fn answers(net: &TestNet, addr: &str, port: u16) -> bool {
    let script = format!(
        "import socket, time\n\
         for _ in range(100):\n\
         \x20   try:\n\
         \x20       s = socket.create_connection(('{addr}', {port}), timeout=2)\n\
         \x20       if s.recv(1) == b'x': print('answered'); break\n\
         \x20   except OSError: pass\n\
         \x20   time.sleep(0.1)"
    );
    net.inside(&["python3", "-c", &script]).contains("answered")
}

/// A sandbox command serving one byte on `port` to every connection.
fn byte_server(port: u16) -> Vec<String> {
    [
        "python3",
        "-c",
        &format!(
            "import socket\n\
             s = socket.socket(); s.bind(('0.0.0.0', {port})); s.listen(8)\n\
             while True:\n\
             \x20   c = s.accept()[0]; c.sendall(b'x'); c.close()"
        ),
    ]
    .map(str::to_owned)
    .to_vec()
}

fn dnat_rules(net: &TestNet) -> Vec<String> {
    net.nat_rules()
        .lines()
        .filter(|l| l.contains("DNAT"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_published_port_reaches_the_sandbox_and_is_withdrawn() {
    let Some(net) = TestNet::new() else { return };
    let server = byte_server(8000);
    let server: Vec<&str> = server.iter().map(String::as_str).collect();
    let mut sandbox = Killed(
        net.nucleus(&["-p", "18090:8000"], &server)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    net.wait_for("the DNAT rules", |n| dnat_rules(n).len() == 2);
    assert_eq!(
        dnat_rules(&net),
        [
            "-A NUCLEUS-OUTPUT -p tcp -m tcp --dport 18090 -j DNAT --to-destination 10.88.0.2:8000",
            "-A NUCLEUS-PREROUTING -p tcp -m tcp --dport 18090 -j DNAT --to-destination 10.88.0.2:8000",
        ]
    );
    // 127.0.0.1 publishing needs route_localnet on the bridge: packets for
    // the host's loopback from the bridge are dropped unless DNAT or replies.
    assert_eq!(
        net.inside(&["iptables", "-w", "-S", "NUCLEUS-INPUT"]),
        "-N NUCLEUS-INPUT\n-A NUCLEUS-INPUT -d 127.0.0.0/8 -i nucleus0 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n"
    );
    assert!(net
        .inside(&["iptables", "-w", "-S", "INPUT"])
        .contains("-A INPUT -j NUCLEUS-INPUT"));
    // The host's own addresses, loopback included (as with podman).
    assert!(answers(&net, "10.88.0.1", 18090));
    assert!(answers(&net, "127.0.0.1", 18090));
    // SIGINT is forwarded (python, as PID 1, has a handler for it only);
    // nucleus withdraws what it added.
    // SAFETY: kill(2) on the pid of the child this test started.
    unsafe { libc::kill(sandbox.0.id() as i32, libc::SIGINT) };
    sandbox.0.wait().unwrap();
    assert_eq!(net.nat_rules(), BASE_NAT_RULES);
    assert_eq!(net.links(), ["lo", "nucleus0"]);
    assert!(net.leases("nucleus0").is_empty());
}

#[test]
fn a_host_port_in_use_is_refused_before_anything_is_made() {
    let Some(net) = TestNet::new() else { return };
    let _taken = python_server(
        &net,
        "import socket, time\n\
         s = socket.socket(); s.bind(('0.0.0.0', 18091)); s.listen(1)\n\
         print('listening', flush=True); time.sleep(60)",
    );
    let out = net.run(&["-p", "18091:80"], &["true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("-p 18091:80/tcp") && err.contains("already in use"),
        "{err}"
    );
    assert_eq!(net.links(), ["lo"], "no bridge was made");
    assert_eq!(net.nat_rules(), "");
}

#[test]
fn a_killed_sandboxs_published_ports_are_swept_at_the_next_start() {
    let Some(net) = TestNet::new() else { return };
    let mut first = Killed(
        net.nucleus(&["-p", "18092:8000/udp"], &["sleep", "60"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    net.wait_for("the DNAT rules", |n| dnat_rules(n).len() == 2);
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    net.wait_for("the veth to go", |n| n.links().len() == 2);
    assert_eq!(dnat_rules(&net).len(), 2, "SIGKILL leaves them");
    stdout(&net.run(&[], &["true"]));
    assert_eq!(net.nat_rules(), BASE_NAT_RULES);
    // The stale lease was swept with them, or taken over and released.
    assert!(net.leases("nucleus0").is_empty());
}

#[test]
fn a_subnet_overlapping_a_host_route_is_refused() {
    let Some(net) = TestNet::new() else { return };
    net.inside(&[
        "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1",
    ]);
    net.inside(&["ip", "addr", "add", "10.77.0.1/16", "dev", "v0"]);
    net.inside(&["ip", "link", "set", "v0", "up"]);
    let out = net.run(&["--bridge", "nb1", "--subnet", "10.77.5.0/24"], &["true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--subnet 10.77.5.0/24")
            && err.contains("overlaps the host's route 10.77.0.0/16"),
        "{err}"
    );
    assert_eq!(net.links(), ["lo", "v1", "v0"]);
}

/// The test namespace's outside: a veth with an address and a default
/// route (the userspace NATs copy them), and a server on its loopback.
fn uplink_and_loopback_server(net: &TestNet, port: u16) -> Killed {
    net.inside(&[
        "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1",
    ]);
    net.inside(&["ip", "addr", "add", "192.0.2.2/24", "dev", "v0"]);
    net.inside(&["ip", "link", "set", "v0", "up"]);
    net.inside(&["ip", "link", "set", "v1", "up"]);
    net.inside(&["ip", "route", "add", "default", "via", "192.0.2.1"]);
    python_server(
        net,
        &format!(
            "import socket\n\
             s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(8)\n\
             print('listening', flush=True)\n\
             while True:\n\
             \x20   c = s.accept()[0]; c.close()"
        ),
    )
}

fn probe_connect(net: &TestNet, flags: &[&str], addr: &str, port: &str) -> String {
    stdout(&net.run(
        flags,
        &["/probe/nucleus-probe", "try", "connect-tcp", addr, port],
    ))
}

#[test]
fn the_userspace_nats_reach_the_hosts_loopback_and_leave_nothing() {
    let Some(net) = TestNet::new() else { return };
    let _server = uplink_and_loopback_server(&net, 18093);
    let before = (net.links(), net.nat_rules());
    // pasta: the gateway's address is the host's loopback.
    let out = probe_connect(&net, &["--nat-backend", "pasta"], "192.0.2.1", "18093");
    assert!(out.contains("\"ok\":true"), "{out}");
    // slirp4netns: 10.0.2.2 is.
    let out = probe_connect(&net, &["--nat-backend", "slirp4netns"], "10.0.2.2", "18093");
    assert!(out.contains("\"ok\":true"), "{out}");
    // Egress rules apply inside, whatever the backend.
    let out = probe_connect(
        &net,
        &[
            "--nat-backend",
            "pasta",
            "--egress-allow",
            "198.51.100.0/24",
        ],
        "192.0.2.1",
        "18093",
    );
    assert!(timed_out(&out), "{out}");
    assert_eq!((net.links(), net.nat_rules()), before);
    assert!(net.leases("nucleus0").is_empty());
}

#[test]
fn pasta_publishes_a_port_and_slirp4netns_refuses_to() {
    let Some(net) = TestNet::new() else { return };
    let _server = uplink_and_loopback_server(&net, 18095);
    let server = byte_server(8000);
    let server: Vec<&str> = server.iter().map(String::as_str).collect();
    let _sandbox = Killed(
        net.nucleus(&["--nat-backend", "pasta", "-p", "18094:8000"], &server)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(answers(&net, "127.0.0.1", 18094));
    let out = net.run(
        &["--nat-backend", "slirp4netns", "-p", "18096:80"],
        &["true"],
    );
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("slirp4netns cannot publish ports"), "{err}");
}

/// `nucleus run --network bridge FLAGS -- CMD` as NUCLEUS_TEST_USER,
/// rootless. /dev/net/tun is 0600 on some hosts (Debian makes it 0666):
/// the test's mount namespace gets a 0666 node of its own.
fn rootless(net: &TestNet, flags: &[&str], cmd: &[&str]) -> Option<Output> {
    let Ok(user) = std::env::var("NUCLEUS_TEST_USER") else {
        eprintln!("SKIPPED: rootless userspace NAT needs NUCLEUS_TEST_USER");
        assert!(std::env::var_os("NUCLEUS_REQUIRE_ALL").is_none());
        return None;
    };
    let probe = Path::new(&std::env::var("NUCLEUS_PROBE").unwrap())
        .parent()
        .unwrap()
        .to_owned();
    let out = Command::new("nsenter")
        .arg(&net.netns)
        .args(["--", "unshare", "--mount", "--propagation", "private"])
        .args([
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /mnt && mknod -m 666 /mnt/tun c 10 200 && \
             mount --bind /mnt/tun /dev/net/tun && exec setpriv --reuid=\"$0\" \
             --regid=\"$0\" --init-groups --reset-env -- \"$@\"",
        ])
        .arg(&user)
        .arg(env!("CARGO_BIN_EXE_nucleus"))
        .args(["run", "--network", "bridge", "-v"])
        .arg(format!("{}:/probe:ro", probe.display()))
        .args(flags)
        .arg("--")
        .args(cmd)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Some(out)
}

#[test]
fn rootless_bridge_uses_a_userspace_nat_with_egress_rules() {
    let Some(net) = TestNet::new() else { return };
    let _server = uplink_and_loopback_server(&net, 18097);
    let before = (net.links(), net.nat_rules());
    let connect = [
        "/probe/nucleus-probe",
        "try",
        "connect-tcp",
        "192.0.2.1",
        "18097",
    ];
    let Some(out) = rootless(&net, &[], &connect) else {
        return;
    };
    let text = stdout(&out);
    assert!(text.contains("\"ok\":true"), "auto picks pasta: {text}");
    let out = rootless(&net, &["--egress-allow", "198.51.100.0/24"], &connect).unwrap();
    let text = stdout(&out);
    assert!(timed_out(&text), "{text}");
    let out = rootless(&net, &["--nat-backend", "kernel"], &["true"]).unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a Linux bridge needs root"), "{err}");
    assert_eq!((net.links(), net.nat_rules()), before);
}

/// A DNS server on the bridge's address (port 53), inside the test
/// namespace: `allowed.test` has an A record (TTL 1) whose address is
/// 192.0.2.99 for the first `flip_after` queries and 10.88.0.1 after;
/// every other name is NXDOMAIN; AAAA answers are empty.
fn dns_server(net: &TestNet, flip_after: u32) -> Killed {
    let script = format!(
        "import socket, struct\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('10.88.0.1', 53))\n\
         print('listening', flush=True)\n\
         asked = 0\n\
         while True:\n\
         \x20   q, peer = s.recvfrom(512)\n\
         \x20   end = q.index(b'\\0', 12) + 5\n\
         \x20   labels, i = [], 12\n\
         \x20   while q[i]: labels.append(q[i+1:i+1+q[i]].decode()); i += 1 + q[i]\n\
         \x20   qtype = struct.unpack('>H', q[i+1:i+3])[0]\n\
         \x20   name = '.'.join(labels).lower()\n\
         \x20   head = q[:2]\n\
         \x20   if name != 'allowed.test':\n\
         \x20       s.sendto(head + struct.pack('>HHHHH', 0x8183, 1, 0, 0, 0) + q[12:end], peer); continue\n\
         \x20   if qtype != 1:\n\
         \x20       s.sendto(head + struct.pack('>HHHHH', 0x8180, 1, 0, 0, 0) + q[12:end], peer); continue\n\
         \x20   asked += 1\n\
         \x20   addr = [192, 0, 2, 99] if asked <= {flip_after} else [10, 88, 0, 1]\n\
         \x20   rr = struct.pack('>HHHIH', 0xc00c, 1, 1, 1, 4) + bytes(addr)\n\
         \x20   s.sendto(head + struct.pack('>HHHHH', 0x8180, 1, 1, 0, 0) + q[12:end] + rr, peer)"
    );
    python_server(net, &script)
}

#[test]
fn egress_to_a_domain_follows_its_addresses() {
    let Some(net) = TestNet::new() else { return };
    stdout(&net.run(&[], &["true"]));
    let _web = serve(&net, &[18081, 18082]);
    let _dns = dns_server(&net, 0);
    let policy = [
        "--dns",
        "10.88.0.1",
        "--egress-allow",
        "allowed.test",
        "--egress-tcp-port",
        "18081",
    ];
    assert_eq!(connect(&net, &policy, "18081"), (true, None));
    assert_eq!(connect(&net, &policy, "18082"), DROPPED);
    // A name that does not resolve: refused before anything is made.
    let links = net.links();
    let out = net.run(
        &["--dns", "10.88.0.1", "--egress-allow", "missing.test"],
        &["true"],
    );
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--egress-allow missing.test") && err.contains("no such domain"),
        "{err}"
    );
    assert_eq!(net.links(), links);
    assert!(net.leases("nucleus0").is_empty());
    // Without --dns there is no resolver to ask.
    let out = net.run(&["--egress-allow", "allowed.test"], &["true"]);
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn a_long_lived_sandbox_follows_a_domain_that_moves() {
    let Some(net) = TestNet::new() else { return };
    stdout(&net.run(&[], &["true"]));
    let _web = serve(&net, &[18081]);
    // The first lookup says 192.0.2.99; the next ones (after the TTL,
    // at least 5 s) say 10.88.0.1.
    let _dns = dns_server(&net, 1);
    let out = stdout(&net.run(
        &["--dns", "10.88.0.1", "--egress-allow", "allowed.test"],
        &[
            "python3",
            "-c",
            "import socket, time\n\
             first = None\n\
             for i in range(60):\n\
             \x20   try:\n\
             \x20       socket.create_connection(('10.88.0.1', 18081), timeout=0.5).close()\n\
             \x20       print('connected', 'first' if i == 0 else 'later', flush=True); break\n\
             \x20   except OSError: time.sleep(0.25)",
        ],
    ));
    assert_eq!(out.trim(), "connected later", "{out}");
}

#[test]
fn denied_destinations_are_reported_once_each() {
    let Some(net) = TestNet::new() else { return };
    stdout(&net.run(&[], &["true"]));
    let report = net.state.join("report.ndjson");
    let report_arg = report.to_str().unwrap();
    let policy = [
        "--egress-allow",
        "192.0.2.0/24",
        "--egress-report",
        report_arg,
    ];
    let try_twice = "/probe/nucleus-probe try connect-tcp 10.88.0.1 18082; \
                     /probe/nucleus-probe try connect-tcp 10.88.0.1 18082; \
                     /probe/nucleus-probe try connect-tcp 10.88.0.1 18083";
    stdout(&net.run(&policy, &["sh", "-c", try_twice]));
    let text = std::fs::read_to_string(&report).unwrap();
    assert_eq!(
        text,
        "{\"kind\":\"egress\",\"proto\":\"tcp\",\"dst\":\"10.88.0.1\",\"port\":18082}\n\
         {\"kind\":\"egress\",\"proto\":\"tcp\",\"dst\":\"10.88.0.1\",\"port\":18083}\n"
    );
    // DNS goes only to the --dns resolvers: a query to any other address
    // is denied (and reported); one to the resolver is not.
    // (A datagram dropped in OUTPUT fails its sendto with EPERM.)
    let queries = "import socket\n\
                   for server in ['10.88.0.1', '10.88.0.9']:\n\
                   \x20   try: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'q', (server, 53))\n\
                   \x20   except PermissionError: pass";
    std::fs::remove_file(&report).unwrap();
    stdout(&net.run(
        &[&policy[..], &["--dns", "10.88.0.1"]].concat(),
        &["python3", "-c", queries],
    ));
    assert_eq!(
        std::fs::read_to_string(&report).unwrap(),
        "{\"kind\":\"egress\",\"proto\":\"udp\",\"dst\":\"10.88.0.9\",\"port\":53}\n"
    );
    // Agent mode without a file: a line on stderr.
    let out = net.run(
        &["--egress-allow", "192.0.2.0/24"],
        &[
            "/probe/nucleus-probe",
            "try",
            "connect-tcp",
            "10.88.0.1",
            "18084",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nucleus: egress denied: tcp 10.88.0.1:18084"),
        "{err}"
    );
    // --violations: the denied destination and the denied system call,
    // in one file.
    std::fs::remove_file(&report).unwrap();
    let both = "/probe/nucleus-probe try connect-tcp 10.88.0.1 18085; \
                python3 -c 'import ctypes; ctypes.CDLL(None).syscall(101, 0, 0, 0, 0)'";
    stdout(&net.run(
        &["--egress-allow", "192.0.2.0/24", "--violations", report_arg],
        &["sh", "-c", both],
    ));
    let text = std::fs::read_to_string(&report).unwrap();
    for line in [
        "{\"kind\":\"egress\",\"proto\":\"tcp\",\"dst\":\"10.88.0.1\",\"port\":18085}",
        "{\"kind\":\"seccomp\",\"syscall\":\"ptrace\",\"nr\":101,\"arch\":\"x86_64\",\"errno\":1}",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
}

#[test]
fn two_sandboxes_on_the_bridge_talk_only_if_allowed() {
    let Some(net) = TestNet::new() else { return };
    let server = byte_server(8000);
    let server: Vec<&str> = server.iter().map(String::as_str).collect();
    let _first = Killed(
        net.nucleus(&[], &server)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    net.wait_for("the first sandbox", |n| n.leases("nucleus0").len() == 1);
    assert!(answers(&net, "10.88.0.2", 8000), "the server is up");
    let peer = |flags: &[&str]| {
        stdout(&net.run(
            flags,
            &[
                "/probe/nucleus-probe",
                "try",
                "connect-tcp",
                "10.88.0.2",
                "8000",
            ],
        ))
    };
    assert!(peer(&[]).contains("\"ok\":true"), "no policy: open");
    assert!(
        peer(&["--egress-allow", "10.88.0.2/32"]).contains("\"ok\":true"),
        "allowed"
    );
    assert!(
        timed_out(&peer(&["--egress-allow", "192.0.2.0/24"])),
        "not allowed: dropped"
    );
}

#[test]
fn nucleus_killed_at_any_point_of_setup_leaves_nothing_the_next_start_keeps() {
    let Some(net) = TestNet::new() else { return };
    // SIGKILL at increasing moments of a start with a published port:
    // before the bridge, between the lease and the veth, after the DNAT.
    for delay_ms in [0u64, 2, 5, 10, 20, 40, 80] {
        let mut run = Killed(
            net.nucleus(&["-p", "18099:8000"], &["sleep", "30"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(delay_ms));
        run.0.kill().unwrap();
        run.0.wait().unwrap();
    }
    net.wait_for("the killed sandboxes' veths to go", |n| {
        !n.links().iter().any(|l| l.starts_with("nv"))
    });
    // The next start sweeps what the killed ones left, and leaves nothing.
    stdout(&net.run(&[], &["true"]));
    assert_eq!(net.nat_rules(), BASE_NAT_RULES);
    assert!(net.leases("nucleus0").is_empty());
    assert_eq!(net.links(), ["lo", "nucleus0"]);
}
