# shellcheck shell=bash
# Guest side: install the project's files where the Debian package will put
# them, each step recorded as a check (lib/assert.sh must be sourced first).
# Used by guest/install.sh for the project and by suites for their fixtures.
#
#   pkg_install_binaries DIR   DIR/*                -> /usr/bin/
#   pkg_install_polkit DIR     DIR/*.policy         -> /usr/share/polkit-1/actions/
#                              DIR/*.rules          -> /usr/share/doc/nucleus/examples/
#                              (a package never activates rules for the admin)
#   pkg_install_units DIR      DIR/*.{service,socket,...} -> /usr/lib/systemd/system/
#                              DIR/tmpfiles.d/*.conf -> /usr/lib/tmpfiles.d/ (applied)
#                              DIR/sysusers.d/*.conf -> /usr/lib/sysusers.d/ (applied)
#                              then daemon-reload, `systemd-analyze verify`, and
#                              every non-template unit with an [Install] section
#                              enabled and started, as deb-systemd-helper and
#                              deb-systemd-invoke do for a package.

PKG_UNIT_DIR=/usr/lib/systemd/system
PKG_POLKIT_ACTIONS=/usr/share/polkit-1/actions
PKG_EXAMPLES=/usr/share/doc/nucleus/examples

pkg_install_binaries() {
  local dir=$1 files=() file
  mapfile -t files < <(find "$dir" -maxdepth 1 -type f -perm -u+x 2>/dev/null | sort)
  if [[ ${#files[@]} == 0 ]]; then
    echo "  note  no binaries staged in $dir (no Cargo workspace yet, or VM_SKIP_BUILD=1)"
    return
  fi
  t_status "install ${#files[@]} binaries to /usr/bin: $(basename -a "${files[@]}" | tr '\n' ' ')" \
    0 install -m 0755 -t /usr/bin "${files[@]}"
  for file in "${files[@]}"; do
    t_status "$(basename "$file"): every shared library it needs is in the guest" \
      0 pkg_libs_resolve "/usr/bin/$(basename "$file")"
  done
}

# Succeed for a static binary or one whose libraries all resolve; print the
# missing ones otherwise.
pkg_libs_resolve() {
  local out
  if ! out=$(ldd "$1" 2>&1); then
    [[ $out == *"not a dynamic executable"* ]] && return 0
    printf '%s\n' "$out"
    return 1
  fi
  if grep -q 'not found' <<< "$out"; then
    grep 'not found' <<< "$out"
    return 1
  fi
}

pkg_install_polkit() {
  local dir=$1 policy rules=() policies=() id
  mapfile -t policies < <(find "$dir" -maxdepth 1 -name '*.policy' | sort)
  mapfile -t rules < <(find "$dir" -maxdepth 1 -name '*.rules' | sort)
  if [[ ${#policies[@]} == 0 ]]; then
    t_fail "$dir has polkit .policy files" "found none"
    return
  fi
  t_status "install $(basename -a "${policies[@]}" | tr '\n' ' ')to $PKG_POLKIT_ACTIONS" \
    0 install -m 0644 -t "$PKG_POLKIT_ACTIONS" "${policies[@]}"
  if [[ ${#rules[@]} -gt 0 ]]; then
    mkdir -p "$PKG_EXAMPLES"
    t_status "install example rules $(basename -a "${rules[@]}" | tr '\n' ' ')to $PKG_EXAMPLES" \
      0 install -m 0644 -t "$PKG_EXAMPLES" "${rules[@]}"
  fi
  # polkitd rereads actions on its own (inotify), but asynchronously; restart
  # it if it is already running so the checks below see the new files.
  systemctl try-restart polkit.service
  for policy in "${policies[@]}"; do
    while read -r id; do
      t_status "polkitd knows action $id (from $(basename "$policy"))" 0 pkaction --action-id "$id"
    done < <(grep -o '<action id="[^"]*"' "$policy" | cut -d'"' -f2)
  done
}

# Print nothing and succeed when `systemd-analyze verify` is silent: it exits
# 0 on warnings, so any output counts as a failure.
pkg_verify_unit() {
  local out
  out=$(systemd-analyze verify "$1" 2>&1)
  [[ -z $out ]] || { printf '%s\n' "$out"; return 1; }
}

# DIR/KIND.d/*.conf -> /usr/lib/KIND.d/, then apply with systemd-KIND.
pkg_apply_sysusers() { install -m 0644 -t /usr/lib/sysusers.d "$1"/sysusers.d/*.conf && systemd-sysusers; }
pkg_apply_tmpfiles() { install -m 0644 -t /usr/lib/tmpfiles.d "$1"/tmpfiles.d/*.conf && systemd-tmpfiles --create; }

pkg_install_units() {
  local dir=$1 units=() unit name
  if [[ -d $dir/sysusers.d ]]; then
    t_status "install and apply sysusers.d from $dir" 0 pkg_apply_sysusers "$dir"
  fi
  if [[ -d $dir/tmpfiles.d ]]; then
    t_status "install and apply tmpfiles.d from $dir" 0 pkg_apply_tmpfiles "$dir"
  fi
  mapfile -t units < <(find "$dir" -maxdepth 1 -type f \
    \( -name '*.service' -o -name '*.socket' -o -name '*.timer' -o -name '*.path' \
       -o -name '*.target' -o -name '*.slice' \) | sort)
  if [[ ${#units[@]} == 0 ]]; then
    t_fail "$dir has systemd units" "found none"
    return
  fi
  t_status "install $(basename -a "${units[@]}" | tr '\n' ' ')to $PKG_UNIT_DIR" \
    0 install -m 0644 -t "$PKG_UNIT_DIR" "${units[@]}"
  t_status "systemctl daemon-reload" 0 systemctl daemon-reload
  for unit in "${units[@]}"; do
    name=$(basename "$unit")
    t_status "systemd-analyze verify $name prints nothing" 0 pkg_verify_unit "$PKG_UNIT_DIR/$name"
  done
  for unit in "${units[@]}"; do
    name=$(basename "$unit")
    [[ $name == *@.* ]] && continue
    grep -q '^\[Install\]' "$unit" || continue
    t_status "systemctl enable --now $name" 0 systemctl enable --now "$name"
  done
}
