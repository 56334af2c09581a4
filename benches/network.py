#!/usr/bin/env python3
"""Network modes: cold start-to-exit and TCP throughput, as root.

Everything happens inside a network namespace this script makes (held by a
`sleep`, entered with nsenter): the bridge, veths, NAT rules and the userspace
NATs never touch the machine's own namespace, and traffic goes only to
addresses inside it. The namespace gets a veth with an address and a default
route, which the userspace NATs need to copy.

Cold start: `nucleus run --network MODE -- /bin/true`, interleaved, medians:
none, bridge with the kernel backend (root, in-process), bridge with pasta,
bridge with slirp4netns.

Throughput: iperf3 from the sandbox to a server in the namespace (the bridge's
address for the kernel backend; the namespace's loopback, reached through the
NAT's gateway address, for pasta and slirp4netns), for a few seconds each.

usage: benches/network.py [--runs N] [--seconds S] [--nucleus PATH]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_NUCLEUS = os.path.join(HERE, "..", "target", "x86_64-unknown-linux-gnu", "release", "nucleus")

# (label, nucleus flags, where the sandbox finds the iperf3 server, where it listens)
BACKENDS = [
    ("bridge, kernel", ["--network", "bridge", "--nat-backend", "kernel"], "10.88.0.1", "10.88.0.1"),
    ("bridge, pasta", ["--network", "bridge", "--nat-backend", "pasta"], "192.0.2.1", "127.0.0.1"),
    ("bridge, slirp4netns", ["--network", "bridge", "--nat-backend", "slirp4netns"], "10.0.2.2", "127.0.0.1"),
]


class Namespace:
    """A network namespace of our own, with a routed veth."""

    def __init__(self):
        self.holder = subprocess.Popen(["unshare", "--net", "--", "sleep", "3600"])
        self.enter = ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", "--"]
        # Until unshare has run, /proc/PID/ns/net is still ours.
        ours = os.readlink("/proc/self/ns/net")
        for _ in range(500):
            if os.readlink(f"/proc/{self.holder.pid}/ns/net") != ours:
                break
            time.sleep(0.01)
        else:
            sys.exit("bench: the network namespace was not made")
        for cmd in (
            "ip link set lo up",
            "ip link add v0 type veth peer name v1",
            "ip addr add 192.0.2.2/24 dev v0",
            "ip link set v0 up",
            "ip link set v1 up",
            "ip route add default via 192.0.2.1",
        ):
            subprocess.run(self.enter + cmd.split(), check=True)

    def close(self):
        self.holder.kill()
        self.holder.wait()


def timed(argv):
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"bench: {' '.join(argv)} exited with {done.returncode}: {done.stderr.decode().strip()}")
    return elapsed


def cold_start(ns, nucleus, runs):
    modes = [("none", ["--network", "none"])] + [(label, flags) for label, flags, _, _ in BACKENDS]
    times = {label: [] for label, _ in modes}
    for _ in range(runs):
        for label, flags in modes:
            times[label].append(timed(ns.enter + [nucleus, "run"] + flags + ["--", "/bin/true"]))
    base = statistics.median(times["none"])
    print(f"cold start, median of {runs} (nucleus run --network MODE -- /bin/true, as root)")
    print(f"| {'mode':<22} | {'median ms':>9} | {'vs none':>7} |")
    print(f"|{'-' * 24}|{'-' * 11}|{'-' * 9}|")
    for label, _ in modes:
        m = statistics.median(times[label])
        print(f"| {label:<22} | {m * 1000:>9.1f} | {m / base:>6.2f}x |")


def throughput(ns, nucleus, seconds):
    print(f"\nTCP throughput sandbox -> namespace, iperf3 -t {seconds}")
    print(f"| {'backend':<22} | {'Gbit/s':>8} |")
    print(f"|{'-' * 24}|{'-' * 10}|")
    for label, flags, target, listen in BACKENDS:
        # The kernel backend's bridge exists once a sandbox made it.
        subprocess.run(ns.enter + [nucleus, "run"] + flags + ["--", "/bin/true"], check=True)
        server = subprocess.Popen(ns.enter + ["iperf3", "-s", "-1", "-B", listen, "-p", "5201"], stdout=subprocess.DEVNULL)
        time.sleep(0.5)
        out = subprocess.run(
            ns.enter + [nucleus, "run"] + flags + ["--", "iperf3", "-c", target, "-p", "5201", "-t", str(seconds), "-J"],
            capture_output=True,
        )
        server.wait(timeout=30)
        if out.returncode != 0:
            sys.exit(f"bench: iperf3 through {label} failed: {out.stderr.decode().strip()}")
        bps = json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"]
        print(f"| {label:<22} | {bps / 1e9:>8.2f} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--nucleus", default=DEFAULT_NUCLEUS)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (it makes a network namespace and a bridge in it)")
    for tool in ("iperf3", "pasta", "slirp4netns", "nsenter", "ip", "iptables"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} is not installed (tests/run-all installs it)")
    nucleus = os.path.realpath(args.nucleus)
    if os.environ.get("NUCLEUS_BENCH_PRIVATE") != "1":
        # Leases go to /run/nucleus: a private /run keeps them off the host.
        os.environ["NUCLEUS_BENCH_PRIVATE"] = "1"
        os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                              'mount -t tmpfs tmpfs /run && exec "$@"', "sh", sys.executable] + sys.argv)
    ns = Namespace()
    try:
        cold_start(ns, nucleus, args.runs)
        throughput(ns, nucleus, args.seconds)
    finally:
        ns.close()


if __name__ == "__main__":
    main()
