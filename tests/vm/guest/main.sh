#!/bin/bash
# Runs in the guest as root (the one command tests/vm/run gives tests/vm/boot):
# installs the project (guest/install.sh), applies VM_BREAK if asked, runs
# each suite in its own bash process, and exits 0 only if everything passed.
#
# usage: main.sh SUITE...      (names of tests/vm/suites/SUITE.sh)
#
# Results go to /mnt/vmctl/results/ (see lib/assert.sh), where the host's
# tests/vm/run reads them for its summary. Settings from the host arrive in
# /mnt/vmctl/env (VM_BREAK).
set -uo pipefail
export VM_ROOT=/mnt/project/tests/vm
export PROJECT=/mnt/project
export T_RESULT_DIR=/mnt/vmctl/results
mkdir -p "$T_RESULT_DIR"
VM_BREAK=
# shellcheck source=/dev/null
[[ -f /mnt/vmctl/env ]] && source /mnt/vmctl/env

status=0
bash "$VM_ROOT/guest/install.sh" || status=1

case $VM_BREAK in
  "") ;;
  polkit)
    echo
    echo "!!! VM_BREAK=polkit: installing a rule that denies every org.nucleus.* action;"
    echo "!!! the polkit checks below are expected to FAIL"
    install -m 0644 -t /etc/polkit-1/rules.d "$VM_ROOT"/fixtures/polkit/break/*.rules
    systemctl try-restart polkit.service
    ;;
  *) echo "unknown VM_BREAK='$VM_BREAK' (known: polkit)"; exit 2 ;;
esac

for suite in "$@"; do
  bash "$VM_ROOT/suites/$suite.sh" || status=1
done
exit "$status"
