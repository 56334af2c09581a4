# shellcheck shell=bash
# Host-side helpers shared by tests/vm/run and tests/vm/boot. Sourced, never
# executed. Everything here only logs, exits or removes paths it is given.

# Exit codes of the harness (documented in tests/vm/README.md):
# shellcheck disable=SC2034  # used by the scripts that source this file
readonly VM_EXIT_TESTS_FAILED=1   # the guest ran and at least one check failed
readonly VM_EXIT_USAGE=2          # bad command line
readonly VM_EXIT_BUILD=3          # cargo build failed
readonly VM_EXIT_TIMEOUT=124      # the VM did not finish within VM_TIMEOUT
readonly VM_EXIT_HARNESS=125      # the harness or the VM failed before a result

VM_LOG_TAG=${VM_LOG_TAG:-vm}

log() { printf '[%s %(%H:%M:%S)T] %s\n' "$VM_LOG_TAG" -1 "$*" >&2; }
die() { log "error: $*"; exit "$VM_EXIT_HARNESS"; }

# rm -rf that first lazily unmounts anything still mounted below the path
# (debootstrap or chroot leftovers after an interrupted build) and never
# crosses into another file system.
safe_rm() {
  local path real mnt
  for path in "$@"; do
    [[ -e $path ]] || continue
    real=$(realpath "$path")
    findmnt -rn -o TARGET | { grep -F "$real/" || true; } | sort -r |
      while read -r mnt; do umount -l "$mnt" || true; done
    rm -rf --one-file-system "$path"
  done
}

# Install missing Debian packages on the host (the harness runs as root).
# usage: ensure_host_packages PKG...
ensure_host_packages() {
  [[ $# -gt 0 ]] || return 0
  log "installing host packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "$@" >&2; then
    apt-get update >&2 || die "apt-get update failed"
    apt-get install -y --no-install-recommends "$@" >&2 || die "apt-get install $* failed"
  fi
}
