# shellcheck shell=bash
# The guest image: a Debian rootfs built with debootstrap, customized for the
# harness and cached as an ext4 file. Sourced by tests/vm/boot; needs
# lib/common.sh. Entry point: image_ensure (sets IMG_DIR).
#
# Cache layout under $VM_CACHE_DIR:
#   base-<key>/    the debootstrap tree plus the kernel (key: suite, mirror,
#                  packages, kernel suite, image_install_kernel's text)
#   img-<key>/     rootfs.img, vmlinuz, initrd.img, kernel-version
#                  (key: VM_IMAGE_VERSION, the text of the functions below,
#                  suite, mirror, packages, kernel suite, disk size,
#                  VM_CACHE_EPOCH)
# A changed package list or recipe gets a new key; older trees and images are
# removed once the new one is built.

# Bump when the image changes in a way the function text does not show.
readonly VM_IMAGE_VERSION=2

# The guest's kernel. bookworm's own linux-image-cloud-amd64 is 6.1, with
# Landlock ABI 2; production mode needs ABI 3 at least, so the kernel comes
# from bookworm-backports (6.12: ABI 6). debootstrap installs one suite only:
# image_install_kernel adds this one afterwards and installs the kernel (and
# only this kernel) from it. VM_KERNEL_SUITE=$VM_SUITE boots the stock one.
readonly VM_KERNEL_PACKAGE=linux-image-cloud-amd64

# What the guest needs: real systemd as PID 1 with udev, D-Bus, logind,
# polkitd, journald; the firewall and network tools; uidmap for unprivileged
# user namespaces with /etc/subuid ranges; socat as a unix-socket client;
# dbus-user-session for the users' own bus (systemd user manager limits);
# bubblewrap, the baseline of the helper benchmark; passt (pasta), the
# rootless userspace NAT. The kernel is not here: see VM_KERNEL_PACKAGE.
readonly -a VM_BASE_PACKAGES=(
  systemd systemd-sysv udev dbus libpam-systemd
  polkitd pkexec iptables nftables iproute2 sudo procps kmod util-linux
  libseccomp2 uidmap socat dbus-user-session bubblewrap passt
)

image_packages() {
  local list
  list=$(IFS=,; echo "${VM_BASE_PACKAGES[*]}")
  [[ -n ${VM_EXTRA_PACKAGES:-} ]] && list="$list,$VM_EXTRA_PACKAGES"
  echo "$list"
}

# The first Debian (non-security) mirror the host's apt already uses.
image_host_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk '/^[[:space:]]*URIs:/ {print $2}
         /^[[:space:]]*deb[[:space:]]/ {for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) {print $i; break}}' "$f"
  done | awk '/\/debian\/?$/ && !/security/ && !found {print; found = 1}'
}

# Install VM_KERNEL_PACKAGE from VM_KERNEL_SUITE (its dependencies from
# VM_SUITE unless they need newer versions) into the debootstrapped tree $1,
# from the same mirror. Needs the network; runs once per debootstrap tree.
image_install_kernel() {
  local root=$1 rc=0
  local apt=(chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 nice -n 10 apt-get -q -y
    -o Dpkg::Use-Pty=0 -o APT::Install-Recommends=false)
  if [[ $VM_KERNEL_SUITE != "$VM_SUITE" ]]; then
    echo "deb $VM_MIRROR $VM_KERNEL_SUITE main" > "$root/etc/apt/sources.list.d/$VM_KERNEL_SUITE.list"
  fi
  # debootstrap copied the host's resolv.conf; the kernel's postinst builds
  # an initrd (update-initramfs), which wants /proc.
  mount -t proc proc "$root/proc"
  "${apt[@]}" update || rc=1
  [[ $rc != 0 ]] || "${apt[@]}" install "$VM_KERNEL_PACKAGE/$VM_KERNEL_SUITE" || rc=1
  "${apt[@]}" clean
  umount "$root/proc"
  rm -rf "$root"/var/lib/apt/lists/*
  return "$rc"
}

# Everything done to the debootstrapped tree $1. The text of this function is
# part of the cache key: editing it rebuilds the image on the next run.
image_customize_rootfs() {
  local root=$1
  echo nucleus-vm > "$root/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 nucleus-vm\n::1 localhost ip6-localhost ip6-loopback\n' \
    > "$root/etc/hosts"
  # /mnt/project: the repository, read-only. /mnt/vmctl: the per-run exchange
  # directory (command, output, exit status, staged binaries, results).
  cat > "$root/etc/fstab" <<'FSTAB'
/dev/vda  /             ext4      rw,errors=remount-ro  0 0
project   /mnt/project  virtiofs  ro,nofail             0 0
vmctl     /mnt/vmctl    virtiofs  rw,nofail             0 0
FSTAB
  mkdir -p "$root/mnt/project" "$root/mnt/vmctl"

  # The runner: starts once boot has finished, runs /mnt/vmctl/cmd as root
  # with bash, tees its output to /mnt/vmctl/output.log, writes the exit
  # status to /mnt/vmctl/rc and powers the guest off.
  cat > "$root/usr/local/sbin/vmrun-wrapper" <<'WRAPPER'
#!/bin/bash
set -u
ctl=/mnt/vmctl
out=$ctl/output.log
uptime_s() { cut -d' ' -f1 /proc/uptime; }
# vmrun.service is Type=exec, so boot can finish while it waits here.
state=$(systemctl is-system-running --wait 2>/dev/null)
echo "[guest] system $state at uptime $(uptime_s)s, command starts" | tee -a "$out"
rc=125
if cd /mnt/project && [[ -f $ctl/cmd ]]; then
  bash "$ctl/cmd" </dev/null 2>&1 | tee -a "$out"
  rc=${PIPESTATUS[0]}
else
  echo "[guest] /mnt/project or $ctl/cmd missing" | tee -a "$out"
fi
echo "[guest] command exited with $rc at uptime $(uptime_s)s" | tee -a "$out"
echo "$rc" > "$ctl/rc.tmp" && mv "$ctl/rc.tmp" "$ctl/rc"
sync
exit 0
WRAPPER
  chmod 755 "$root/usr/local/sbin/vmrun-wrapper"
  cat > "$root/etc/systemd/system/vmrun.service" <<'UNIT'
[Unit]
Description=Run the host-provided command, then power off
After=multi-user.target
RequiresMountsFor=/mnt/project /mnt/vmctl
# Whatever happens to the command, the guest powers off and qemu exits.
SuccessAction=poweroff
FailureAction=poweroff

[Service]
Type=exec
ExecStart=/usr/local/sbin/vmrun-wrapper
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
UNIT
  ln -sf /etc/systemd/system/vmrun.service \
    "$root/etc/systemd/system/multi-user.target.wants/vmrun.service"

  # Nothing else runs: no login prompts on the consoles, no timers.
  ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
  ln -sf /dev/null "$root/etc/systemd/system/getty@tty1.service"
  rm -f "$root"/etc/systemd/system/timers.target.wants/*

  # Optional NIC (VM_NET=1 adds systemd.wants=systemd-networkd.service).
  mkdir -p "$root/etc/systemd/network"
  printf '[Match]\nName=en*\n[Network]\nDHCP=ipv4\n' > "$root/etc/systemd/network/50-dhcp.network"
  echo 'nameserver 10.0.2.3' > "$root/etc/resolv.conf"

  # A small initrd: only what mounting /dev/vda needs.
  echo MODULES=list > "$root/etc/initramfs-tools/conf.d/nucleus-vm.conf"
  printf 'virtio_pci\nvirtio_blk\n' >> "$root/etc/initramfs-tools/modules"
  mount -t proc proc "$root/proc"
  chroot "$root" update-initramfs -u -k all >/dev/null 2>&1 || { umount "$root/proc"; return 1; }
  umount "$root/proc"

  # Users: root without a password; two unprivileged test users with fixed
  # uids and fixed subordinate id ranges (for newuidmap/newgidmap).
  chroot "$root" passwd -d root >/dev/null
  chroot "$root" useradd -m -u 1000 -U -s /bin/bash tester
  chroot "$root" useradd -m -u 1001 -U -s /bin/bash other
  printf 'tester:100000:65536\nother:165536:65536\n' > "$root/etc/subuid"
  printf 'tester:100000:65536\nother:165536:65536\n' > "$root/etc/subgid"
}

# Build the image into directory $1 (replaced atomically at the end).
image_build() {
  local out=$1 packages base tmp root kver
  packages=$(image_packages)
  # Level 1: the debootstrap tree and the kernel, keyed on suite, mirror,
  # packages and kernel suite, so a recipe change alone does not download
  # everything again.
  base=$VM_CACHE_DIR/base-$(image_base_key)
  if [[ ! -f $base/.complete ]]; then
    safe_rm "$VM_CACHE_DIR"/base-*
    log "debootstrap $VM_SUITE from $VM_MIRROR ($packages)"
    if ! nice -n 10 debootstrap --variant=minbase --include="$packages" \
        "$VM_SUITE" "$base.tmp" "$VM_MIRROR" > "$VM_CACHE_DIR/debootstrap.log" 2>&1; then
      tail -n 30 "$VM_CACHE_DIR/debootstrap.log" >&2
      safe_rm "$base.tmp"
      die "debootstrap failed (full log: $VM_CACHE_DIR/debootstrap.log)"
    fi
    log "installing $VM_KERNEL_PACKAGE from $VM_KERNEL_SUITE"
    if ! image_install_kernel "$base.tmp" > "$VM_CACHE_DIR/kernel.log" 2>&1; then
      tail -n 30 "$VM_CACHE_DIR/kernel.log" >&2
      safe_rm "$base.tmp"
      die "installing the kernel failed (full log: $VM_CACHE_DIR/kernel.log)"
    fi
    rm -f "$base.tmp"/var/cache/apt/archives/*.deb
    touch "$base.tmp/.complete"
    mv "$base.tmp" "$base"
  else
    log "using cached debootstrap tree $base"
  fi

  # Level 2: a customized copy, packed into an ext4 image.
  tmp=$(mktemp -d "$VM_CACHE_DIR/build.XXXXXX")
  root=$tmp/rootfs
  cp -a "$base" "$root"
  rm -f "$root/.complete"
  image_customize_rootfs "$root" || { safe_rm "$tmp"; die "customizing the rootfs failed"; }
  # Exactly one kernel: the one image_install_kernel installed.
  kver=$(find "$root/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n')
  if [[ $kver == *$'\n'* || ! -f $root/boot/vmlinuz-$kver || ! -f $root/boot/initrd.img-$kver ]]; then
    safe_rm "$tmp"
    die "not exactly one kernel with its initrd in the image: '${kver//$'\n'/ }'"
  fi
  cp "$root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
  cp "$root/boot/initrd.img-$kver" "$tmp/initrd.img"
  log "mkfs.ext4 (rootfs $(du -sh "$root" | cut -f1), image $VM_DISK_SIZE sparse)"
  if ! nice -n 10 mkfs.ext4 -q -F -L nucleus-root -d "$root" "$tmp/rootfs.img" "$VM_DISK_SIZE" \
      > "$tmp/mkfs.log" 2>&1; then
    cat "$tmp/mkfs.log" >&2
    safe_rm "$tmp"
    die "mkfs.ext4 failed"
  fi
  rm -f "$tmp/mkfs.log"
  safe_rm "$root"
  echo "$kver" > "$tmp/kernel-version"
  safe_rm "$out"
  mv "$tmp" "$out"
}

image_base_key() {
  {
    echo "$VM_CACHE_EPOCH $VM_SUITE $VM_MIRROR $(image_packages)"
    echo "$VM_KERNEL_SUITE $VM_KERNEL_PACKAGE"
    declare -f image_install_kernel
  } | sha256sum | cut -c1-16
}

image_cache_key() {
  {
    echo "nucleus-vm-image v$VM_IMAGE_VERSION"
    declare -f image_install_kernel image_customize_rootfs image_build
    echo "$VM_CACHE_EPOCH $VM_SUITE $VM_MIRROR $(image_packages) $VM_DISK_SIZE"
    echo "$VM_KERNEL_SUITE $VM_KERNEL_PACKAGE"
  } | sha256sum | cut -c1-16
}

# Make sure a built image exists; sets IMG_DIR. Builds under a lock so that
# two concurrent runs never build at the same time.
image_ensure() {
  local lock_fd t0 dir
  IMG_DIR=$VM_CACHE_DIR/img-$(image_cache_key)
  mkdir -p "$VM_CACHE_DIR"
  exec {lock_fd}> "$VM_CACHE_DIR/.lock"
  flock "$lock_fd"
  if [[ $VM_REBUILD == 1 || ! -f $IMG_DIR/rootfs.img ]]; then
    t0=$SECONDS
    log "building guest image $IMG_DIR (not cached)"
    image_build "$IMG_DIR"
    log "guest image built in $((SECONDS - t0))s"
    for dir in "$VM_CACHE_DIR"/img-* "$VM_CACHE_DIR"/build.*; do
      [[ $dir == "$IMG_DIR" ]] || safe_rm "$dir"
    done
  else
    log "using cached guest image $IMG_DIR"
  fi
  flock -u "$lock_fd"
  exec {lock_fd}>&-
}
