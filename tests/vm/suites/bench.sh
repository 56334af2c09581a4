#!/bin/bash
# Suite "bench": start-to-exit through the helper (warm socket, polkit
# allow, a cgroup with limits) against bwrap, both as the unprivileged user
# tester, interleaved, in the same guest. Prints a table; the only checks
# are that both commands run (timings are never pass/fail). Under TCG
# emulation both are slow; the ratio is what carries over.
set -uo pipefail
VM_ROOT=${VM_ROOT:-/mnt/project/tests/vm}
# shellcheck source=tests/vm/lib/assert.sh
source "$VM_ROOT/lib/assert.sh"

RUNS=${BENCH_RUNS:-40}
as_tester() { setpriv --reuid=tester --regid=tester --init-groups --reset-env -- "$@"; }

install -m 0644 -t /etc/polkit-1/rules.d "$VM_ROOT/fixtures/polkit/60-nucleus-vmtest.rules"
sleep 1

# Milliseconds of one run of "$@" as tester; empty if it failed.
time_ms() {
  local t0 t1
  t0=$(date +%s%N)
  if ! as_tester "$@" >/dev/null 2>/tmp/bench.err; then
    echo "  failed: $* ($(head -c 300 /tmp/bench.err))" >&2
    return 1
  fi
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000))
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

t_begin bench
# Warm-up, and wait for polkitd to have loaded the rule installed above.
for ((i = 0; i < 50; i++)); do
  as_tester nucleus run --memory 64M -- /bin/true >/dev/null 2>&1 && break
  sleep 0.2
done
helper=() bwrap=() rootless=() ps=()
ok=1
for ((i = 0; i < RUNS && ok; i++)); do
  h=$(time_ms nucleus run --memory 64M --pids 64 -- /bin/true) || ok=0
  b=$(time_ms bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev /bin/true) || ok=0
  r=$(time_ms nucleus run --rootless -- /bin/true) || ok=0
  p=$(time_ms nucleus ps) || ok=0
  helper+=("$h") bwrap+=("$b") rootless+=("$r") ps+=("$p")
done
if [[ $ok == 1 ]]; then t_pass "$RUNS runs of each succeeded"; else t_fail "$RUNS runs of each succeeded"; fi
mh=$(printf '%s\n' "${helper[@]}" | median)
mb=$(printf '%s\n' "${bwrap[@]}" | median)
printf '  %-40s %10s\n' "command (tester, median of $RUNS)" "us"
printf '  %-40s %10s\n' "nucleus run via helper (limits, polkit)" "$mh"
printf '  %-40s %10s\n' "bwrap --unshare-all ... /bin/true" "$mb"
# Where the helper's time goes: the same sandbox in-process, and a helper
# round trip that starts no sandbox and asks no polkit.
printf '  %-40s %10s\n' "nucleus run --rootless (no limits)" "$(printf '%s\n' "${rootless[@]}" | median)"
printf '  %-40s %10s\n' "nucleus ps (socket activation only)" "$(printf '%s\n' "${ps[@]}" | median)"
awk -v h="$mh" -v b="$mb" 'BEGIN {printf "  ratio helper/bwrap: %.2f (target <= 1.2)\n", h / b}'
t_end
