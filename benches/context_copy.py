#!/usr/bin/env python3
"""Copy throughput of `nucleus run --context DIR` against `cp -a`.

Builds a tree of 10,000 files / 100 MB (100 directories of 100 files of
10 KiB), then times, interleaved and repeated:
  cp -a SRC /dev/shm/...            (the same tmpfs kind nucleus copies into)
  nucleus run --context SRC -- /bin/true,  minus  nucleus run -- /bin/true
and prints files/s for both and the ratio (target: nucleus >= 0.9 x cp).

usage: benches/context_copy.py [--runs N] [--nucleus PATH]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

FILES_PER_DIR, DIRS, SIZE = 100, 100, 10 * 1024


def make_tree(root):
    payload = os.urandom(SIZE)
    for d in range(DIRS):
        sub = os.path.join(root, f"d{d:03}")
        os.mkdir(sub)
        for f in range(FILES_PER_DIR):
            with open(os.path.join(sub, f"f{f:03}"), "wb") as out:
                out.write(payload)


def timed(argv):
    start = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--nucleus", default=os.path.join(here, "..", "target", "x86_64-unknown-linux-gnu", "release", "nucleus"))
    args = parser.parse_args()
    nucleus = os.path.realpath(args.nucleus)
    files = FILES_PER_DIR * DIRS
    with tempfile.TemporaryDirectory(prefix="nucleus-ctx-bench-", dir="/var/tmp") as src:
        make_tree(src)
        subprocess.run(["sync"], check=True)
        cp, nuc = [], []
        for _ in range(args.runs):
            dst = tempfile.mkdtemp(prefix="nucleus-cp-", dir="/dev/shm")
            try:
                cp.append(timed(["cp", "-a", src, os.path.join(dst, "copy")]))
            finally:
                shutil.rmtree(dst)
            base = timed([nucleus, "run", "--", "/bin/true"])
            full = timed([nucleus, "run", "--context", src, "--", "/bin/true"])
            nuc.append(max(full - base, 1e-6))
    cp_rate = files / statistics.median(cp)
    nuc_rate = files / statistics.median(nuc)
    print(f"tree: {files} files, {files * SIZE // (1024 * 1024)} MiB; {args.runs} runs, medians")
    print(f"{'cp -a':<22} {statistics.median(cp) * 1000:8.1f} ms {cp_rate:10.0f} files/s")
    print(f"{'nucleus --context':<22} {statistics.median(nuc) * 1000:8.1f} ms {nuc_rate:10.0f} files/s")
    print(f"ratio nucleus/cp: {nuc_rate / cp_rate:.2f} (target >= 0.90)")


if __name__ == "__main__":
    main()
