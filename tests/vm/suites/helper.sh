#!/bin/bash
# Suite "helper": the privileged helper as packaged: its socket unit from
# systemd/ activates the helper, which forks a child per connection; unprivileged users get
# cgroup limits through it (OOM kill reported, fork bomb stopped at
# --pids); polkit decides who may (rules for tester/other, the shipped
# example rule for members of group nucleus, a rule on the sandbox name);
# and many runs leave no cgroup, mount or unit behind. Runs as root.
set -uo pipefail
VM_ROOT=${VM_ROOT:-/mnt/project/tests/vm}
PROJECT=${PROJECT:-/mnt/project}
# shellcheck source=tests/vm/lib/assert.sh
source "$VM_ROOT/lib/assert.sh"

# Run as USER, at most 60 s (a hung helper must fail the suite, not hang it).
as_user() {
  local user=$1
  shift
  timeout -k 5 60 setpriv --reuid="$user" --regid="$user" --init-groups --reset-env -- "$@"
}

# The record of the running sandbox named $1, once it exists (at most 10 s).
record_of() {
  local rec i
  for ((i = 0; i < 100; i++)); do
    rec=$(grep -l "^name=$1\$" /run/nucleus/sandboxes/* 2>/dev/null | head -n 1)
    [[ -n $rec ]] && break
    sleep 0.1
  done
  echo "$rec"
}

# The helper's journal, for failures.
helper_journal() { journalctl -q --no-pager -u nucleus-helper.service -o short-monotonic | tail -n 30; }

t_begin helper

t_section "socket activation"
t_eq "nucleus-helper.socket (from systemd/) is listening" active "$(systemctl is-active nucleus-helper.socket)"
t_eq "the socket is world-connectable" "srw-rw-rw-" "$(stat -c %A /run/nucleus/helper.sock)"

echo "  info  $(systemd-analyze security --no-pager nucleus-helper.service 2>/dev/null | tail -n 1)"

t_section "polkit rules"
install -m 0644 -t /etc/polkit-1/rules.d "$VM_ROOT/fixtures/polkit/60-nucleus-vmtest.rules" \
  "$PROJECT/polkit/50-nucleus-example.rules"
getent group nucleus >/dev/null || groupadd nucleus
id third >/dev/null 2>&1 || useradd --create-home --groups nucleus third
sleep 1 # polkitd reloads rules on change

t_section "limits through the helper"
# The first run goes to files, not a pipe: if it hangs, show why.
as_user tester nucleus run --memory 64M -- sh -c 'echo via-helper; id -u' >/tmp/first.out 2>&1 &
first=$!
for ((i = 0; i < 300; i++)); do kill -0 "$first" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$first" 2>/dev/null; then
  echo "--- the first run through the helper hangs; diagnostics:"
  ps -eo pid,ppid,user,stat,wchan:24,cmd --forest | grep -v ' \[' | tail -n 40
  helper_journal
  for p in $(pgrep -f nucleus); do echo "== $p $(cat /proc/$p/cmdline | tr '\0' ' ')"; cat /proc/$p/stack 2>/dev/null | head -5; done
fi
wait "$first"
out=$(cat /tmp/first.out)
t_eq "tester: a sandbox runs through the helper, as uid 0 inside" "via-helper
0" "$out"
[[ $out == "via-helper"* ]] || t_quote "$(helper_journal)"
t_match "the helper's audit line names tester and the decision" "audit uid=1000 .*decision=allowed" \
  "$(journalctl -q --no-pager -t nucleus-helper -o cat 2>/dev/null | tail -n 5; journalctl -q --no-pager -u nucleus-helper.service -o cat | tail -n 5)"

out=$(as_user tester nucleus run --memory 64M -- tail /dev/zero 2>&1)
rc=$?
t_eq "tester: a memory hog under --memory 64M is OOM-killed (137)" 137 "$rc"
t_match "tester is told it was an OOM kill" "ran out of memory" "$out"

out=$(as_user tester nucleus run --pids 50 -- sh -c 'i=0; while [ $i -lt 200 ]; do sleep 3 & i=$((i+1)); done; wait' 2>&1)
t_match "tester: a fork bomb stops at --pids 50" 'fork|Resource temporarily unavailable' "$out"

t_section "who may"
out=$(as_user other nucleus run --memory 64M -- true 2>&1)
rc=$?
t_eq "other: refused (exit 125)" 125 "$rc"
t_match "other is told which polkit action to grant" "polkit does not allow org.nucleus.run" "$out"
t_eq "third (group nucleus, shipped example rule): allowed" "ok" \
  "$(as_user third nucleus run --memory 64M -- echo ok 2>&1)"
out=$(as_user tester nucleus run --memory 64M --network host --allow-host-network -- true 2>&1)
t_match "the host's network needs its own action (admin by default)" "polkit does not allow org.nucleus.network.host" "$out"
out=$(as_user tester nucleus run --name vmtest-denied-by-detail --memory 64M -- true 2>&1)
t_match "a rule on the sandbox name (polkit detail) denies tester" "polkit does not allow" "$out"

t_section "a bridged network through the helper"
out=$(as_user tester nucleus run --network bridge -- sh -c 'ip -br -4 addr show eth0; ip route show default' 2>&1)
t_match "tester: eth0 on nucleus0 with a leased address" "^eth0@if[0-9]+ +UP +10\.88\.0\.2/16" "$out"
t_match "and a default route through the bridge" "default via 10\.88\.0\.1" "$out"
out=$(as_user third nucleus run --network bridge -- true 2>&1)
t_match "third: the bridge needs its own action" "polkit does not allow org.nucleus.network.bridge" "$out"
t_eq "no veth left" "" "$(ip -br link | grep '^nv' || true)"
t_eq "no lease left" "" "$(ls -A /run/nucleus/leases/nucleus0 2>/dev/null)"
t_match "NAT for the subnet, in nucleus's own chain" "NUCLEUS-POSTROUTING -s 10.88.0.0/16 ! -o nucleus0 -j MASQUERADE" "$(iptables -t nat -S)"

t_section "published ports through the helper"
# setpriv directly, not as_user: $! must be nucleus itself.
setpriv --reuid=tester --regid=tester --init-groups --reset-env -- \
  nucleus run --network bridge -p 18080:8000 -- \
  socat TCP-LISTEN:8000,reuseaddr,fork SYSTEM:'echo published' >/dev/null 2>&1 &
published=$!
reply=""
for _ in $(seq 1 100); do
  reply=$(socat -T2 - TCP:127.0.0.1:18080 </dev/null 2>/dev/null || true)
  [[ $reply == published ]] && break
  sleep 0.2
done
t_eq "tester: host port 18080 reaches the sandbox's 8000 (127.0.0.1 too)" "published" "$reply"
t_match "forwarded by DNAT in nucleus's chain" "NUCLEUS-PREROUTING -p tcp -m tcp --dport 18080 -j DNAT --to-destination 10\.88\.0\.[0-9]+:8000" "$(iptables -t nat -S)"
# socat, PID 1 of its sandbox, ignores the first SIGTERM; the second is
# a SIGKILL (as nucleus escalates it).
kill -TERM "$published"; sleep 1; kill -TERM "$published" 2>/dev/null || true
wait "$published" 2>/dev/null || true
t_eq "the DNAT rules are withdrawn when it ends" "" "$(iptables -t nat -S | grep DNAT || true)"
out=$(as_user tester nucleus run --network bridge -p 80:8000 -- true 2>&1)
t_match "a host port below 1024 needs its own action (admin)" "polkit does not allow org.nucleus.network.publish-privileged-port" "$out"
socat TCP-LISTEN:18082,reuseaddr SYSTEM:true >/dev/null 2>&1 &
holder=$!
sleep 0.3
out=$(as_user tester nucleus run --network bridge -p 18082:8000 -- true 2>&1)
t_match "a host port in use is a clear error" "-p 18082:8000/tcp: the host port is already in use" "$out"
kill "$holder"; wait "$holder" 2>/dev/null || true
t_eq "nothing left: no veth" "" "$(ip -br link | grep '^nv' || true)"
t_eq "nothing left: no lease" "" "$(ls -A /run/nucleus/leases/nucleus0 2>/dev/null)"
# This guest's namespace is the test's: take the bridge and its rules away.
ip link del nucleus0
for chain in POSTROUTING PREROUTING OUTPUT; do
  iptables -t nat -S "$chain" | grep -- "-j NUCLEUS-$chain" | sed 's/^-A/-D/' |
    while read -r rule; do eval "iptables -t nat $rule"; done
  iptables -t nat -F "NUCLEUS-$chain"
  iptables -t nat -X "NUCLEUS-$chain"
done
t_match "publishing guarded the host's loopback against the bridge" \
  "NUCLEUS-INPUT -d 127.0.0.0/8 -i nucleus0 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP" \
  "$(iptables -S NUCLEUS-INPUT)"
iptables -D INPUT -j NUCLEUS-INPUT
iptables -F NUCLEUS-INPUT
iptables -X NUCLEUS-INPUT

t_section "rootless userspace NAT (pasta, stock /dev/net/tun)"
ip link add v0 type veth peer name v1
ip addr add 192.0.2.2/24 dev v0
ip link set v0 up; ip link set v1 up
ip route add default via 192.0.2.1
socat TCP-LISTEN:18083,bind=127.0.0.1,reuseaddr,fork SYSTEM:'echo loopback' >/dev/null 2>&1 &
lo_server=$!
sleep 0.3
out=$(as_user tester nucleus run --rootless --network bridge -- socat -T2 - TCP:192.0.2.1:18083,connect-timeout=2 </dev/null 2>&1)
t_match "tester, rootless: the host's loopback through pasta's gateway" "^loopback$" "$out"
out=$(as_user tester nucleus run --rootless --network bridge --egress-allow 198.51.100.0/24 -- \
  socat -T2 - TCP:192.0.2.1:18083,connect-timeout=2 </dev/null 2>&1)
t_match "with an egress policy the same connection is denied and reported" "egress denied: tcp 192\.0\.2\.1:18083" "$out"
kill "$lo_server"; wait "$lo_server" 2>/dev/null || true
ip link del v0
t_eq "nothing of pasta's left" "" "$(pgrep -x pasta || true)"

t_section "--rootfs through the helper; production mode"
# A root of the guest's own: its /usr bound in, the rest empty.
mkdir -p /srv/root/{usr,etc,tmp,proc,dev,sys,run}
mount --bind /usr /srv/root/usr
for l in bin sbin lib lib64; do ln -sfn "usr/$l" "/srv/root/$l"; done
host_mounts=$(awk '{print $5}' /proc/self/mountinfo | sort | md5sum)
out=$(as_user tester nucleus run --memory 64M --rootfs /srv/root -- sh -c 'echo "pid $$"' 2>&1)
t_eq "tester: a sandbox on a root of its own (pivot_root into a cloned tree)" "pid 1" "$out"
out=$(as_user tester nucleus run --memory 64M --init --rootfs / -- sh -c 'echo "pid $$"' 2>&1)
t_match "--rootfs / (shared mounts) with a mini-init: the workload is not PID 1" "^pid [2-9][0-9]*$" "$out"
t_eq "the host's mount table is as it was (the clones are private)" "$host_mounts" \
  "$(awk '{print $5}' /proc/self/mountinfo | sort | md5sum)"
out=$(as_user tester nucleus run --service-mode production --rootfs /srv/root -- true 2>&1)
t_match "production without --memory is refused" "production mode forbids: production mode needs a memory limit" "$out"

# The guest runs bookworm-backports' kernel: Landlock ABI 3 and more.
t_section "production mode end to end"
prod=(nucleus run --service-mode production --memory 64M --rootfs /srv/root --audit-log journal)
out=$(as_user tester "${prod[@]}" -- sh -c 'echo "pid $$"; grep " /proc " /proc/self/mountinfo' 2>&1)
t_match "tester: the workload runs under the mini-init (not PID 1)" "^pid [2-9][0-9]*$" "$(head -n 1 <<<"$out")"
t_match "tester: /proc is mounted hidepid" "hidepid=(2|invisible)" "$out"
sleep 0.5
start=$(journalctl -q --no-pager -o cat SYSLOG_IDENTIFIER=nucleus NUCLEUS_EVENT=start | tail -n 1)
t_match "the audit log: production through the helper, init, hidepid, mount audit, Landlock at ABI 3" \
  '"mode":"production".*"executor":"helper".*"landlock":"MinimumAbi\(3\)".*"init":true,"hide_pids":true,"mount_audit":true' "$start"
out=$(as_user tester "${prod[@]}" -- tail /dev/zero 2>&1)
t_eq "tester: a memory hog in production is OOM-killed (137)" 137 "$?"
# hidepid=2 for real: a process of uid 1 is visible to uid 1 and hidden
# from uid 2. The workload keeps CAP_SETUID and CAP_SETGID (ambient) to
# become both, on tester's subordinate range; perl switches (setpriv
# wants PR_SET_KEEPCAPS, which the locked securebits refuse).
printf '[bounding]\nkeep = ["CAP_SETUID", "CAP_SETGID"]\n[ambient]\nkeep = ["CAP_SETUID", "CAP_SETGID"]\n' > /srv/setid-caps.toml
# `sh /as UID COMMAND...` becomes COMMAND as UID in the same process, so
# that $! is the process of uid 1 itself.
cat > /srv/root/as <<'SCRIPT'
exec perl -MPOSIX -e '($u, @cmd) = @ARGV; POSIX::setgid($u) or die "setgid: $!\n";
  POSIX::setuid($u) or die "setuid: $!\n"; exec @cmd or die "exec: $!\n"' "$@"
SCRIPT
cat > /srv/root/hidepid.sh <<'SCRIPT'
sh /as 1 sleep 30 &  # ended with the sandbox (PID 1 exits)
p=$!
sleep 0.3
sh /as 1 sh -c "test -d /proc/$p && echo uid1-sees || echo uid1-blind"
sh /as 2 sh -c "test -d /proc/$p && echo uid2-sees || echo uid2-blind"
sh /as 2 sh -c "ls /proc | grep -qx $p && echo uid2-lists || echo uid2-no-list"
SCRIPT
chmod 644 /srv/setid-caps.toml /srv/root/as /srv/root/hidepid.sh
out=$(as_user tester "${prod[@]}" --userns subids --caps-policy /srv/setid-caps.toml -- sh /hidepid.sh 2>&1)
t_eq "hidepid=2: uid 1's process is seen by uid 1, hidden from uid 2" \
  "uid1-sees uid2-blind uid2-no-list" "$(tr '\n' ' ' <<<"$out" | sed 's/ $//')"
umount /srv/root/usr

t_section "the audit log to journald"
as_user tester nucleus run --audit-log journal --memory 64M -- true >/dev/null 2>&1
sleep 0.5
out=$(journalctl -q --no-pager -o cat SYSLOG_IDENTIFIER=nucleus NUCLEUS_EVENT=start | tail -n 1)
t_match "a start event with the mode, the digest and the executor" '"event":"start","mode":"agent","plan_digest":"sha256:[0-9a-f]{64}","executor":"helper"' "$out"
out=$(journalctl -q --no-pager -o cat SYSLOG_IDENTIFIER=nucleus NUCLEUS_EVENT=exit | tail -n 1)
t_match "and its exit" '"event":"exit","status":0' "$out"

t_section "ceilings (/etc/nucleus/helper.conf)"
mkdir -p /etc/nucleus
printf 'pids_max = 256\nuser %s memory_max_bytes = 67108864\n' "$(id -u tester)" >/etc/nucleus/helper.conf
out=$(as_user tester nucleus run --memory 1G -- true 2>&1)
t_match "tester above the memory ceiling needs org.nucleus.limits.exceed" "polkit does not allow org.nucleus.limits.exceed" "$out"
out=$(as_user tester nucleus run --pids 64 -- tail /dev/zero 2>&1)
rc=$?
t_eq "tester without --memory gets the 64M ceiling: the hog is OOM-killed (137)" 137 "$rc"
rm /etc/nucleus/helper.conf

t_section "a client that goes away"
setpriv --reuid=tester --regid=tester --init-groups --reset-env -- nucleus run --memory 64M --name gone -- sleep 60 >/dev/null 2>&1 &
client=$!
for ((i = 0; i < 100; i++)); do
  pgrep -u tester -x sleep >/dev/null && break
  sleep 0.1
done
t_status "the sandbox of a connected client runs" 0 pgrep -u tester -x sleep
kill -KILL "$client"
wait "$client" 2>/dev/null
for ((i = 0; i < 100; i++)); do
  pgrep -u tester -x sleep >/dev/null || break
  sleep 0.1
done
t_status "killing the client kills its sandbox" 1 pgrep -u tester -x sleep

t_section "terminal and copy-in-out through the helper"
out=$(as_user tester script -qec "nucleus run --memory 64M -t -- sh -c 'tty; stty size'" /dev/null 2>&1 | tr -d '\r')
t_match "-t: the workload gets a terminal of the sandbox's own devpts" "/dev/pts/[0-9]+" "$out"
ws=/home/tester/ws
rm -rf "$ws"
as_user tester sh -c "mkdir $ws && echo old > $ws/gone.txt && echo keep > $ws/kept.txt"
out=$(as_user tester nucleus run --memory 64M --workspace "$ws" --workspace-mode copy-in-out -- \
  sh -c 'echo new > /workspace/new.txt; rm /workspace/gone.txt; id -u' 2>&1)
t_eq "copy-in-out: the workload ran as root inside" "0" "$out"
t_eq "copy-in-out: changes came back, owned by tester" "kept.txt new.txt tester" \
  "$(cd "$ws" && echo $(ls) "$(stat -c %U new.txt)")"

t_section "subordinate ids (--userns subids)"
grep -q '^tester:' /etc/subuid || usermod --add-subuids 100000-165535 --add-subgids 100000-165535 tester
range=$(awk -F: '$1 == "tester" { print $2, $3; exit }' /etc/subuid)
out=$(as_user tester nucleus run --memory 64M --userns subids -- sh -c 'cat /proc/self/uid_map' 2>&1 | awk '{ $1 = $1; print }')
t_eq "tester: 0 is tester, 1 and up tester's /etc/subuid range" "0 $(id -u tester) 1
1 $range" "$out"

t_section "io.weight"
as_user tester nucleus run --io-weight 300 --name weighted -- sleep 30 >/dev/null 2>&1 &
weighted=$!
rec=$(record_of weighted)
cg=$(sed -n 's/^cgroup=//p' "$rec" 2>/dev/null)
t_eq "--io-weight 300 is the sandbox cgroup's io.weight" "default 300" "$(cat "$cg/io.weight" 2>&1)"
as_user tester nucleus kill "$(basename "$rec")"
wait "$weighted" 2>/dev/null

t_section "ps, stop and kill"
as_user tester nucleus run --memory 64M --name longrun -- sh -c 'trap "exit 3" TERM; sleep 60 & wait' >/dev/null 2>&1 &
longrun=$!
for ((i = 0; i < 100; i++)); do
  id=$(as_user tester nucleus ps 2>/dev/null | awk '$3 == "longrun" { print $1 }')
  [[ -n $id ]] && break
  sleep 0.1
done
t_match "tester's nucleus ps lists the sandbox" "^[0-9a-f]{16}$" "$id"
t_eq "other's nucleus ps does not" "" "$(as_user other nucleus ps 2>&1 | grep longrun)"
t_match "root's nucleus ps does" "$id +$(id -u tester) +longrun" "$(nucleus ps)"
out=$(as_user other nucleus stop "$id" 2>&1)
t_match "other may not stop tester's sandbox" "belongs to uid $(id -u tester); polkit does not allow org.nucleus.manage-others" "$out"
t_status "so it still runs" 0 kill -0 "$longrun"
t_status "tester stops it" 0 as_user tester nucleus stop "$id"
wait "$longrun"
t_eq "the workload got SIGTERM and exited on its own terms" 3 "$?"
as_user tester nucleus run --memory 64M --name doomed -- sleep 60 >/dev/null 2>&1 &
doomed=$!
for ((i = 0; i < 100; i++)); do
  id=$(as_user tester nucleus ps 2>/dev/null | awk '$3 == "doomed" { print $1 }')
  [[ -n $id ]] && break
  sleep 0.1
done
t_status "nucleus kill ends it at once" 0 as_user tester nucleus kill "$id"
wait "$doomed"
t_eq "killed: 137" 137 "$?"
t_match "the audit file records the refusal" "uid=$(id -u other) .*action=stop sandbox=$id decision=denied|action=stop .*decision=denied" \
  "$(cat /var/log/nucleus/audit.log)"
t_eq "the audit file is root's alone" "600 root" "$(stat -c '%a %U' /var/log/nucleus/audit.log)"

t_section "a helper that dies"
as_user tester nucleus run --memory 64M --name orphan -- sleep 60 >/dev/null 2>&1 &
orphan=$!
rec=$(record_of orphan)
supervisor=$(sed -n 's/^supervisor=\([0-9]*\):.*/\1/p' "$rec")
kill -KILL "$supervisor"
wait "$orphan" 2>/dev/null
t_eq "the next request finds nothing running" "" "$(nucleus ps | awk 'NR > 1')"
t_status "and the dead helper's record is gone" 1 test -e "$rec"
t_match "the clean-up is audited" "action=reconcile sandbox=$(basename "$rec") decision=removed" \
  "$(cat /var/log/nucleus/audit.log)"
t_eq "the helper itself still serves" active "$(systemctl is-active nucleus-helper.service)"

t_section "nothing left behind"
for ((i = 0; i < 100; i++)); do
  as_user tester nucleus run --memory 64M --pids 64 -- true >/dev/null 2>&1 || echo "run $i failed"
done | { out=$(cat); t_eq "100 more runs through the helper succeed" "" "$out"; }
sleep 1
t_eq "no sandbox cgroup remains" "" "$(find /sys/fs/cgroup -type d -name 'user-*' -path '*nucleus-helper*' 2>/dev/null)"
t_eq "no state record remains" "" "$(ls -A /run/nucleus/sandboxes)"
t_eq "no connection process remains" "" "$(pgrep -P "$(systemctl show -p MainPID --value nucleus-helper.service)" || true)"
t_eq "no mount left in the host namespace" "0" "$(grep -c -E 'nucleus|/run/secrets|/context|/workspace' /proc/self/mountinfo)"

t_end
