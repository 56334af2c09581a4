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
    assert_eq!(
        net.nat_rules(),
        "-N NUCLEUS-POSTROUTING\n-A POSTROUTING -j NUCLEUS-POSTROUTING\n\
         -A NUCLEUS-POSTROUTING -s 10.88.0.0/16 ! -o nucleus0 -j MASQUERADE"
    );
    // The next sandbox adds no rule twice.
    stdout(&net.run(&[], &["true"]));
    assert_eq!(net.nat_rules().lines().count(), 3);
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

/// A server on the bridge's address for `ports`, inside the test
/// namespace, accepting until it is dropped.
fn serve(net: &TestNet, ports: &[u16]) -> Killed {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let mut server = Command::new("nsenter")
        .arg(&net.netns)
        .args(["--", "python3", "-c"])
        .arg(format!(
            "import socket, select\n\
             ls = []\n\
             for p in [{}]:\n\
             \x20   s = socket.socket(); s.bind(('10.88.0.1', p)); s.listen(8); ls.append(s)\n\
             print('listening', flush=True)\n\
             while True:\n\
             \x20   for s in select.select(ls, [], [], 60)[0]:\n\
             \x20       s.accept()[0].close()",
            ports.join(", ")
        ))
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

/// The probe's connect attempt from a sandbox with `flags`: (ok, errno).
fn connect(net: &TestNet, flags: &[&str], port: &str) -> (bool, Option<i64>) {
    let out = stdout(&net.run(
        flags,
        &[
            "/probe/nucleus-probe",
            "try",
            "connect-tcp",
            "10.88.0.1",
            port,
        ],
    ));
    let ok = out.contains("\"ok\":true");
    let errno = out
        .split("\"errno\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .and_then(|n| n.parse().ok());
    (ok, errno)
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
    let dropped = (false, Some(i64::from(libc::ETIMEDOUT)));
    assert_eq!(connect(&net, &policy, "18082"), dropped);
    let wider = ["--egress-allow", "0.0.0.0/0"];
    assert_eq!(connect(&net, &wider, "18082"), (true, None));
    let meta = stdout(&net.run(
        &wider,
        &[
            "/probe/nucleus-probe",
            "try",
            "connect-tcp",
            "169.254.169.254",
            "80",
        ],
    ));
    assert!(
        meta.contains(&format!("\"errno\":{}", libc::ETIMEDOUT)),
        "metadata stays closed under 0.0.0.0/0: {meta}"
    );
    drop(server);
    assert_eq!(net.links(), ["lo", "nucleus0"]);
    assert!(net.leases("nucleus0").is_empty());
}
