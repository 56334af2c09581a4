#!/bin/bash
# Suite "env": proves the guest is the environment the privileged half of
# Nucleus needs, so later suites only add tests. Runs as root in the guest.
#
#   systemd is PID 1 and the boot finished cleanly; cgroup v2 with the cpu,
#   memory, pids and io controllers; a transient unit started over the system
#   bus gets its cgroup limits and its output reaches the journal; polkitd
#   answers CheckAuthorization for the test users from installed rules; a
#   socket unit activates its service when a user connects; unprivileged user
#   namespaces (plain and with /etc/subuid ranges) work for both test users;
#   netns, veth, nftables and iptables work.
set -uo pipefail
VM_ROOT=${VM_ROOT:-/mnt/project/tests/vm}
PROJECT=${PROJECT:-/mnt/project}
FIXTURES=$VM_ROOT/fixtures
# shellcheck source=tests/vm/lib/assert.sh
source "$VM_ROOT/lib/assert.sh"
# shellcheck source=tests/vm/lib/package.sh
source "$VM_ROOT/lib/package.sh"

# Run a command as USER without PAM or a login session (plain setuid/setgid).
as_user() {
  local user=$1
  shift
  setpriv --reuid="$user" --regid="$user" --init-groups --reset-env -- "$@"
}

# Squeeze stdin into one line of single-space-separated words.
words() { tr -s ' \t\n' '   ' | sed 's/^ //; s/ $//'; }

# Poll CMD every 0.2 s for up to SECONDS; succeed as soon as it does.
wait_for() {
  local seconds=$1 i
  shift
  for ((i = 0; i < seconds * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

STARTED=()   # pids of the per-user processes started below
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local pid
  for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

t_begin env

# ------------------------------------------------------------------ systemd
t_section "systemd"
t_match "PID 1 is systemd" '/lib/systemd/systemd$' "$(readlink /proc/1/exe)"
state=$(systemctl is-system-running)
if [[ $state == running ]]; then
  t_pass "boot finished with no failed unit (system running)"
else
  t_fail "boot finished with no failed unit (system running)" "state: $state" \
    "failed units:" "$(systemctl --failed --no-legend --plain)"
fi
# snapshot=on: what a run writes to the guest's disk is gone in the next run.
marker_file=/var/lib/nucleus-vmtest/written-by-an-earlier-run
t_eq "the root fs starts pristine (no file left by an earlier run)" absent \
  "$(if [[ -e $marker_file ]]; then echo "present: $(cat "$marker_file")"; else echo absent; fi)"
mkdir -p "${marker_file%/*}" && date > "$marker_file" && sync
t_match "dbus-daemon answers on the system bus" '^s "[0-9a-f]{32}"$' \
  "$(busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetId 2>&1)"

# ------------------------------------------------------------------ cgroup v2
t_section "cgroup v2"
t_eq "/sys/fs/cgroup is the unified cgroup2 hierarchy" cgroup2fs "$(stat -f -c %T /sys/fs/cgroup)"
controllers=$(cat /sys/fs/cgroup/cgroup.controllers)
for c in cpu memory pids io; do
  t_match "cgroup.controllers lists $c" "(^| )$c( |$)" "$controllers"
done

# ------------------------------------------------- transient unit + journal
t_section "transient unit over D-Bus, journald"
unit=nucleus-vmtest-transient.service
marker="nucleus-vmtest-marker-$(date +%s%N)"
# StartTransientUnit(name, mode, properties, aux) through dbus-daemon, as the
# helper will call it (systemd-run as root would use systemd's private socket).
t_match "StartTransientUnit over the system bus returns a job" '^o "/org/freedesktop/systemd1/job/[0-9]+"$' \
  "$(busctl -- call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
      org.freedesktop.systemd1.Manager StartTransientUnit 'ssa(sv)a(sa(sv))' \
      "$unit" fail 4 \
      Description s "Nucleus VM test transient unit" \
      ExecStart 'a(sasb)' 1 /bin/sh 3 /bin/sh -c "echo $marker; exec sleep 300" false \
      MemoryMax t 67108864 \
      TasksMax t 32 \
      0 2>&1)"
wait_for 20 systemctl is-active --quiet "$unit"
t_eq "$unit is active" active "$(systemctl is-active "$unit")"
cg=/sys/fs/cgroup/system.slice/$unit
t_eq "MemoryMax=64M reached the unit's memory.max" 67108864 "$(cat "$cg/memory.max" 2>&1)"
t_eq "TasksMax=32 reached the unit's pids.max" 32 "$(cat "$cg/pids.max" 2>&1)"
# shellcheck disable=SC2317  # called through wait_for
journal_has_marker() { journalctl -u "$unit" -o cat --no-pager | grep -qx "$marker"; }
wait_for 20 journal_has_marker
t_match "journalctl -u $unit reads back the unit's output" "^$marker\$" \
  "$(journalctl -u "$unit" -o cat --no-pager 2>&1)"
busctl -- call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
  org.freedesktop.systemd1.Manager StopUnit ss "$unit" replace >/dev/null

# ------------------------------------------------------------------ polkit
t_section "polkit"
expected_actions="org.nucleus.limits.exceed org.nucleus.manage-others org.nucleus.network.bridge org.nucleus.network.host org.nucleus.network.publish-port org.nucleus.network.publish-privileged-port org.nucleus.run"
t_eq "polkitd knows every action of polkit/org.nucleus.policy" "$expected_actions" \
  "$(pkaction | grep '^org\.nucleus\.' | sort | words)"
t_match "org.nucleus.run: yes when active, auth_admin otherwise" \
  'implicit any: +auth_admin.*implicit inactive: +auth_admin.*implicit active: +yes' \
  "$(pkaction --verbose --action-id org.nucleus.run | words)"
for action in limits.exceed network.bridge network.publish-port network.host manage-others; do
  t_match "org.nucleus.$action: auth_admin_keep" \
    'implicit any: +auth_admin_keep.*implicit inactive: +auth_admin_keep.*implicit active: +auth_admin_keep' \
    "$(pkaction --verbose --action-id "org.nucleus.$action" | words)"
done
t_match "org.nucleus.network.publish-privileged-port: auth_admin, never kept" \
  'implicit any: +auth_admin implicit inactive: +auth_admin implicit active: +auth_admin( |$)' \
  "$(pkaction --verbose --action-id org.nucleus.network.publish-privileged-port | words)"

# Two rules: the test-only fixture (tester yes, other no) and the project's
# example rule, which the package installs as documentation only and which
# grants members of group "nucleus" (nobody yet). polkitd rereads rules by
# itself but asynchronously: one restart makes the change visible at once.
install -m 0644 -t /etc/polkit-1/rules.d "$FIXTURES/polkit/60-nucleus-vmtest.rules" \
  "$PKG_EXAMPLES/50-nucleus-example.rules"
groupadd --system nucleus
systemctl try-restart polkit.service

# A process of each user, for the unix-process subject.
declare -A USER_PID
for user in tester other; do
  setpriv --reuid="$user" --regid="$user" --init-groups --reset-env -- sleep 600 &
  USER_PID[$user]=$!
  STARTED+=($!)
done
# shellcheck disable=SC2317  # called through wait_for
runs_as() { [[ $(stat -c %U "/proc/${USER_PID[$1]}") == "$1" ]]; }
wait_for 10 runs_as tester
wait_for 10 runs_as other

# polkit's verdict for USER's process on ACTION, in words; extra arguments
# are pkcheck options (--detail KEY VALUE).
polkit_verdict() {
  local user=$1 action=$2 rc=0
  shift 2
  pkcheck --action-id "$action" --process "${USER_PID[$user]}" "$@" >/dev/null 2>&1 || rc=$?
  case $rc in
    0) echo "authorized" ;;
    1) echo "not authorized (pkcheck exit 1)" ;;
    2) echo "authentication required (pkcheck exit 2)" ;;
    *) echo "error (pkcheck exit $rc)" ;;
  esac
}
details=(--detail sandbox vmtest --detail plan_digest "sha256:$(printf vmtest | sha256sum | cut -c1-64)" --detail network_mode none)
t_eq "polkit (rule from fixtures): tester may org.nucleus.run" \
  "authorized" "$(polkit_verdict tester org.nucleus.run "${details[@]}")"
t_eq "polkit (rule from fixtures): other may not org.nucleus.run" \
  "not authorized (pkcheck exit 1)" "$(polkit_verdict other org.nucleus.run "${details[@]}")"
t_eq "polkit: a rule can deny by the 'sandbox' detail" \
  "not authorized (pkcheck exit 1)" \
  "$(polkit_verdict tester org.nucleus.run --detail sandbox vmtest-denied-by-detail)"
t_eq "polkit: no rule for org.nucleus.network.host -> defaults (admin auth)" \
  "authentication required (pkcheck exit 2)" "$(polkit_verdict tester org.nucleus.network.host)"

# The D-Bus call the helper will make: a unix-process subject with pid,
# start-time and uid (polkit 122 takes no pidfd), and the details.
dbus_verdict() {
  local user=$1 action=$2 pid start_time reply
  pid=${USER_PID[$user]}
  start_time=$(sed 's/.*) //' "/proc/$pid/stat" | cut -d' ' -f20)
  reply=$(busctl -- call org.freedesktop.PolicyKit1 /org/freedesktop/PolicyKit1/Authority \
    org.freedesktop.PolicyKit1.Authority CheckAuthorization '(sa{sv})sa{ss}us' \
    unix-process 3 pid u "$pid" start-time t "$start_time" uid i "$(id -u "$user")" \
    "$action" 3 sandbox vmtest plan_digest sha256:0 network_mode none 0 '' 2>&1)
  case $reply in
    "(bba{ss}) true false"*) echo "authorized" ;;
    "(bba{ss}) false true"*) echo "authentication required" ;;
    "(bba{ss}) false false"*) echo "not authorized" ;;
    *) echo "error: $reply" ;;
  esac
}
t_eq "CheckAuthorization over D-Bus (pid, start-time, uid): tester may org.nucleus.run" \
  "authorized" "$(dbus_verdict tester org.nucleus.run)"
t_eq "CheckAuthorization over D-Bus (pid, start-time, uid): other may not org.nucleus.run" \
  "not authorized" "$(dbus_verdict other org.nucleus.run)"

# The example rule: polkitd looks group membership up at each check.
usermod -aG nucleus other
t_eq "polkit (polkit/50-nucleus-example.rules): other, once in group nucleus, may org.nucleus.run" \
  "authorized" "$(polkit_verdict other org.nucleus.run "${details[@]}")"
gpasswd -d other nucleus >/dev/null

# ------------------------------------------------------- socket activation
t_section "socket activation (fixture until the helper's units land)"
socket=nucleus-vmtest-echo.socket
pkg_install_units "$FIXTURES/systemd"
t_eq "$socket is listening" active "$(systemctl is-active "$socket")"
t_eq "no connection accepted yet" 0 "$(systemctl show -P NAccepted "$socket")"
t_eq "tester connects and the activated service answers" "hello from tester" \
  "$(as_user tester sh -c 'printf "hello from tester\n" | timeout 20 socat - UNIX-CONNECT:/run/nucleus-vmtest/echo.sock' 2>&1)"
t_eq "the socket unit accepted exactly that connection" 1 "$(systemctl show -P NAccepted "$socket")"

# ------------------------------------------------------- user namespaces
t_section "unprivileged user namespaces"
for user in tester other; do
  uid=$(id -u "$user")
  t_eq "$user: unshare --user --map-root-user maps root to $uid" "0 $uid 1" \
    "$(as_user "$user" unshare --user --map-root-user cat /proc/self/uid_map 2>&1 | words)"
  range=$(grep "^$user:" /etc/subuid | cut -d: -f2)
  t_eq "$user: newuidmap maps 1..65535 from /etc/subuid ($range)" "0 $uid 1 1 $range 65535" \
    "$(as_user "$user" unshare --user --map-root-user --map-auto cat /proc/self/uid_map 2>&1 | words)"
done

# ------------------------------------------------------- network tooling
t_section "network namespaces, veth, nftables, iptables"
ns=nucleus-vmtest
t_status "ip netns add $ns" 0 ip netns add "$ns"
t_status "veth pair inside $ns" 0 ip -n "$ns" link add vt0 type veth peer name vt1
t_status "nft table inside $ns" 0 ip netns exec "$ns" nft add table inet nucleus_vmtest
t_status "iptables rule inside $ns" 0 ip netns exec "$ns" iptables -w -A INPUT -i vt0 -j DROP
ip netns del "$ns"

t_end
