#!/bin/bash
# Runs in the guest as root before the suites: installs the freshly built
# binaries and the project's polkit/ and systemd/ files the way the Debian
# package will (see lib/package.sh). Reported as the pseudo-suite "install",
# so a broken install fails the run with a readable message.
set -uo pipefail
VM_ROOT=${VM_ROOT:-/mnt/project/tests/vm}
PROJECT=${PROJECT:-/mnt/project}
# shellcheck source=tests/vm/lib/assert.sh
source "$VM_ROOT/lib/assert.sh"
# shellcheck source=tests/vm/lib/package.sh
source "$VM_ROOT/lib/package.sh"

t_begin install
t_section "binaries (cargo build --release --workspace on the host)"
pkg_install_binaries /mnt/vmctl/bin
t_section "polkit/"
pkg_install_polkit "$PROJECT/polkit"
t_section "systemd/"
if [[ -d $PROJECT/systemd ]]; then
  pkg_install_units "$PROJECT/systemd"
else
  echo "  note  the project has no systemd/ directory yet; nothing to install"
fi
t_end
