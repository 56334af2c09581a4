#!/bin/bash
# Suite "limits": rootless cgroup limits are enforced for real (--rootless:
# the helper, when installed, is the helper suite's business). nucleus puts
# the sandbox into a transient systemd scope (the system manager for root,
# the user's own manager for an unprivileged user): a memory hog is
# OOM-killed, a fork loop stops at --pids, --cpus becomes cpu.max, and the
# scopes are gone afterwards. Runs as root in the guest.
set -uo pipefail
VM_ROOT=${VM_ROOT:-/mnt/project/tests/vm}
# shellcheck source=tests/vm/lib/assert.sh
source "$VM_ROOT/lib/assert.sh"

# Run as USER in their own systemd user session (lingering), with the
# session bus address nucleus needs to reach the user manager.
as_session_user() {
  local user=$1 uid
  shift
  uid=$(id -u "$user")
  setpriv --reuid="$user" --regid="$user" --init-groups --reset-env -- \
    env XDG_RUNTIME_DIR="/run/user/$uid" DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/$uid/bus" "$@"
}

as_root() { "$@"; }

# cpu.max of the running scope whose unit name starts with PREFIX.
cpu_max_of() {
  local prefix=$1 path i
  for ((i = 0; i < 50; i++)); do
    path=$(find /sys/fs/cgroup -type d -name "$prefix*.scope" 2>/dev/null | head -n 1)
    [[ -n $path ]] && { cat "$path/cpu.max"; return; }
    sleep 0.1
  done
  echo "no scope $prefix*"
}

t_begin limits

t_section "user manager for tester"
loginctl enable-linger tester
for ((i = 0; i < 100; i++)); do
  [[ -S /run/user/$(id -u tester)/bus ]] && break
  sleep 0.1
done
t_status "tester's user manager and session bus are up" 0 test -S "/run/user/$(id -u tester)/bus"

# Strict modes never map the sandbox's root to the host's: root's
# sandboxes use a subordinate range of its own.
grep -q '^root:' /etc/subuid || usermod --add-subuids 400000-465535 --add-subgids 400000-465535 root

for who in root tester; do
  if [[ $who == root ]]; then run="as_root nucleus run --rootless --userns subids"; else
    run="as_session_user tester nucleus run --rootless"
  fi
  t_section "$who"
  out=$($run --service-mode strict-agent --memory 32M -- tail /dev/zero 2>&1)
  rc=$?
  t_eq "$who: a memory hog under --memory 32M is OOM-killed (exit 137)" 137 "$rc"
  [[ $rc == 137 ]] || t_quote "$out"

  out=$($run --service-mode strict-agent --pids 4 -- sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait' 2>&1)
  t_match "$who: a fork loop stops at --pids 4" 'fork|Resource temporarily unavailable' "$out"

  $run --service-mode strict-agent --cpus 0.5 --name cpu-$who -- sleep 3 &
  pid=$!
  t_eq "$who: --cpus 0.5 becomes cpu.max" "50000 100000" "$(cpu_max_of "nucleus-cpu-$who-")"
  wait "$pid"

  out=$($run --service-mode strict-agent --memory 64M -- sh -c 'echo within limits' 2>&1)
  t_eq "$who: a sandbox within its limits runs normally" "within limits" "$out"
done

t_section "nothing left behind"
sleep 0.5
left=$(systemctl list-units --all --plain --no-legend 'nucleus-*.scope' 2>/dev/null; as_session_user tester systemctl --user list-units --all --plain --no-legend 'nucleus-*.scope' 2>/dev/null)
t_eq "no nucleus scopes remain (system and tester's manager)" "" "$left"

t_end
