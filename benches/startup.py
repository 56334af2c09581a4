#!/usr/bin/env python3
"""Cold start-to-exit of `nucleus run -- /bin/true` against bubblewrap.

Runs both commands interleaved (so load on the machine hits both alike),
many times, and prints a table of medians and the ratio, then nucleus's peak
RSS (VmHWM of the nucleus process while its sandbox runs) and the release
binary's size.

usage: benches/startup.py [--runs N] [--nucleus PATH]
The target (issue 2): nucleus median <= 0.8 x bwrap, peak RSS <= 3 MiB.
"""

import argparse
import os
import shutil
import statistics
import sys
import time

BWRAP = ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "/bin/true"]


def peak_rss_kib(nucleus):
    """VmHWM of a running `nucleus run`, after its sandbox has started.

    wait4's ru_maxrss cannot be used: posix_spawn shares the spawner's
    memory until exec, so the child's high-water mark starts at python's.
    """
    peak = 0
    for _ in range(5):
        pid = os.posix_spawn(nucleus, [nucleus, "run", "--", "/bin/sleep", "0.3"], os.environ)
        time.sleep(0.15)
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        os.waitpid(pid, 0)
    return peak


def run_once(argv):
    """Wall time in seconds of one run; fails loudly."""
    devnull = os.open(os.devnull, os.O_RDWR)
    start = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - start
    os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: {' '.join(argv)} exited with {os.waitstatus_to_exitcode(status)}")
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--nucleus", default=os.path.join(os.path.dirname(__file__), "..", "target", "x86_64-unknown-linux-gnu", "release", "nucleus"))
    args = parser.parse_args()
    nucleus = os.path.realpath(args.nucleus)
    if not os.access(nucleus, os.X_OK):
        sys.exit(f"bench: {nucleus} not found; run 'cargo build --release' first")
    if shutil.which("bwrap") is None:
        sys.exit("bench: bwrap not found; apt-get install bubblewrap")
    commands = {"nucleus": [nucleus, "run", "--", "/bin/true"], "bwrap": BWRAP}
    for argv in commands.values():  # warm the page cache
        run_once(argv)
    times = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, argv in commands.items():
            times[name].append(run_once(argv))
    med = {name: statistics.median(ts) * 1000 for name, ts in times.items()}
    print(f"{'command':<10} {'median ms':>10} {'p10 ms':>8} {'p90 ms':>8}")
    for name, ts in times.items():
        q = statistics.quantiles(ts, n=10)
        print(f"{name:<10} {med[name]:>10.3f} {q[0] * 1000:>8.3f} {q[-1] * 1000:>8.3f}")
    ratio = med["nucleus"] / med["bwrap"]
    print(f"ratio nucleus/bwrap: {ratio:.2f} (target <= 0.80)")
    print(f"nucleus peak RSS: {peak_rss_kib(nucleus) / 1024:.2f} MiB (target <= 3 MiB)")
    print(f"nucleus binary: {os.path.getsize(nucleus) / 1024:.0f} KiB ({nucleus})")
    print(f"runs: {args.runs} each, interleaved; uid {os.getuid()}")


if __name__ == "__main__":
    main()
