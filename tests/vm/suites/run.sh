#!/bin/bash
# Suite "run": `nucleus run` on the guest's kernel (bookworm-backports'
# 6.12, not the development host's), as root and as both unprivileged test users: the
# sandbox starts, reports the default restrictions through the probe, and
# keeps one user's files out of another's sandbox. Runs as root in the guest.
set -uo pipefail
VM_ROOT=${VM_ROOT:-/mnt/project/tests/vm}
# shellcheck source=tests/vm/lib/assert.sh
source "$VM_ROOT/lib/assert.sh"

as_user() {
  local user=$1
  shift
  setpriv --reuid="$user" --regid="$user" --init-groups --reset-env -- "$@"
}

# The value of KEY in the probe's JSON report on stdin (first occurrence;
# the keys used here are unique), spaces squeezed.
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" | tr -s ' '; }

PROBE_DIR=$(mktemp -d /tmp/nucleus-probe.XXXXXX)
install -m 0755 /usr/bin/nucleus-probe "$PROBE_DIR/"
chmod 0755 "$PROBE_DIR"
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() { rm -rf "$PROBE_DIR"; }
trap cleanup EXIT

t_begin run

t_section "hello"
for user in root tester other; do
  out=$(as_user "$user" nucleus run -- sh -c 'echo hello from $(hostname)' 2>&1)
  t_eq "$user: nucleus run prints hello from nucleus" "hello from nucleus" "$out"
done

t_section "restrictions seen from inside (probe)"
for user in root tester other; do
  uid=$(id -u "$user")
  report=$(as_user "$user" nucleus run -v "$PROBE_DIR:/probe:ro" -- /probe/nucleus-probe report 2>&1)
  t_eq "$user: no effective capabilities" "0000000000000000" "$(field eff <<<"$report")"
  t_eq "$user: empty bounding set" "0000000000000000" "$(field bnd <<<"$report")"
  t_eq "$user: no_new_privs" "1" "$(field no_new_privs <<<"$report")"
  t_eq "$user: seccomp filter mode" "2" "$(field seccomp <<<"$report")"
  t_eq "$user: uid 0 inside maps to the caller" "0 $uid 1" "$(field uid_map <<<"$report")"
  t_match "$user: Landlock ABI available" '^[1-9]' "$(field landlock_abi <<<"$report")"
done

t_section "users stay apart"
secret=$(mktemp -d /tmp/nucleus-secret.XXXXXX)
chown tester: "$secret" && chmod 0700 "$secret" && echo tester-only > "$secret/file" && chown tester: "$secret/file"
t_eq "tester reads its own directory through a volume" "tester-only" \
  "$(as_user tester nucleus run -v "$secret:/data:ro" -- cat /data/file 2>&1)"
t_status "other cannot mount tester's directory as a volume" 125 \
  as_user other nucleus run -v "$secret:/data:ro" -- cat /data/file
rm -rf "$secret"

t_end
