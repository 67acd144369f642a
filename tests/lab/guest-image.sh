#!/usr/bin/env bash
# guest-image.sh - a cached, bootable Debian guest image for the virtops.libvirt lab.
#
# Built from Debian packages only (debootstrap --variant=minbase), without mounting
# anything on the machine and without loop devices: the root filesystem is made by
# 'mke2fs -d' from a directory tree and converted to a compressed qcow2.  The kernel
# and initrd sit beside it for direct kernel boot (the image has no boot loader).
#
# Usage: guest-image.sh build | path | key | prune
#   build  build the image unless it is cached; print its directory (the only stdout line)
#   path   print the directory of the cached image; exit 1 if it is not built
#   key    print the cache key (a short hash of every input, this script included)
#   prune  remove cached images with another key (and leftovers of failed builds)
# See tests/lab/README.md ("A bootable guest image").
set -euo pipefail

PROG=${0##*/}
SELF=$(readlink -f "${BASH_SOURCE[0]}")

SUITE=${VIRTOPS_GUEST_SUITE:-bookworm}
ARCH=amd64
VARIANT=minbase
IMAGE_SIZE=2G
# The kernel: linux-image-amd64 (generic) has the AHCI driver a SATA cdrom on q35
# needs; linux-image-cloud-amd64 lacks it (and e1000/e1000e): see README.md.
# dbus: without it there is no systemd-logind, and neither an ACPI power button
# (virsh shutdown --mode acpi) nor the agent's guest-shutdown (shutdown -P +0) works.
KERNEL=${VIRTOPS_GUEST_KERNEL:-linux-image-amd64}
PACKAGES=(
    systemd-sysv udev dbus initramfs-tools "$KERNEL"
    cloud-init python3-cffi-backend
    qemu-guest-agent openssh-server
    ifupdown isc-dhcp-client netbase
)
CMDLINE='root=/dev/vda rw console=ttyS0 net.ifnames=0'
GUEST_HOSTNAME=debian

CACHE_NAME=guest-image
# CACHE_ROOT, BASE, log, die, mirror, begin_build, debootstrap_root, run_logged, prune (build-lib.sh)
# shellcheck source=tests/lab/build-lib.sh
. "$(dirname "$SELF")/build-lib.sh"

usage() {
    cat >&2 <<EOF
usage: $PROG build   build the guest image unless cached; print its directory
       $PROG path    print the directory of the cached image; exit 1 if not built
       $PROG key     print the cache key
       $PROG prune   remove cached images with other keys
cache: $BASE (VIRTOPS_CACHE_DIR); mirror: $(mirror) (VIRTOPS_GUEST_MIRROR)
EOF
    exit 2
}

# Short hash of every input of the build.
cache_key() {
    {
        printf 'suite=%s\narch=%s\nvariant=%s\nsize=%s\nmirror=%s\npackages=%s\ncmdline=%s\n' \
            "$SUITE" "$ARCH" "$VARIANT" "$IMAGE_SIZE" "$(mirror)" "${PACKAGES[*]}" "$CMDLINE"
        cat "$SELF" "$(dirname "$SELF")/build-lib.sh"
    } | sha256sum | cut -c1-12
}

image_ready() { # DIR
    local f
    for f in manifest.json root.qcow2 vmlinuz initrd.img; do
        [[ -s $1/$f ]] || return 1
    done
}

json_str() { # STRING -> JSON string literal
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

# ----------------------------------------------------------- guest config ---
# Before debootstrap's stage 2 installs the kernel: a small initrd (the generic
# MODULES=most one is 36 MB gzip, 130 MB unpacked, ~5 s to unpack under TCG)
# with the drivers a root disk needs on virtio-blk, virtio-scsi, SATA, IDE or NVMe.
# Neither file belongs to a package (no conffile prompts).
configure_initramfs() { # ROOTFS
    local r=$1
    mkdir -p "$r/etc/initramfs-tools/conf.d" "$r/etc/initramfs-tools/hooks"
    cat >"$r/etc/initramfs-tools/conf.d/virtops-lab" <<EOF
# Written by virtops.libvirt tests/lab/guest-image.sh: only the listed modules
# (hooks/virtops-lab) go into the initrd.
MODULES=list
EOF
    cat >"$r/etc/initramfs-tools/hooks/virtops-lab" <<'EOF'
#!/bin/sh
# Written by virtops.libvirt tests/lab/guest-image.sh: root disk drivers.
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in prereqs) prereqs; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
manual_add_modules virtio_pci virtio_blk virtio_scsi sd_mod ahci ata_piix nvme ext4 crc32c_generic
EOF
    chmod 0755 "$r/etc/initramfs-tools/hooks/virtops-lab"
}

configure_guest() { # ROOTFS
    local r=$1 f

    # identity: a fixed hostname, a fresh machine-id on every VM (an empty
    # file: systemd makes one up at boot, without first-boot presets)
    printf '%s\n' "$GUEST_HOSTNAME" >"$r/etc/hostname"
    cat >"$r/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$GUEST_HOSTNAME
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF
    : >"$r/etc/machine-id"
    rm -f "$r/var/lib/dbus/machine-id"
    # debootstrap copies the machine's resolv.conf: dhclient writes the guest's
    rm -f "$r/etc/resolv.conf"
    : >"$r/etc/resolv.conf"

    cat >"$r/etc/fstab" <<EOF
# <file system> <mount point> <type> <options> <dump> <pass>
LABEL=root	/	ext4	defaults,errors=remount-ro	0	1
EOF

    # DHCP on the first NIC (eth0: the kernel cmdline has net.ifnames=0),
    # whether or not cloud-init finds a seed
    cat >"$r/etc/network/interfaces" <<EOF
# Written by virtops.libvirt tests/lab/guest-image.sh.
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

allow-hotplug eth0
iface eth0 inet dhcp
EOF
    mkdir -p "$r/etc/network/interfaces.d"

    # cloud-init: look for a NoCloud seed (a filesystem labelled cidata), else
    # go on with no data.  ifupdown owns the network: cloud-init writes no
    # network config (a seed's network-config is ignored), so nothing competes
    # for eth0, seed or not.
    cat >"$r/etc/cloud/cloud.cfg.d/99_virtops_lab.cfg" <<EOF
# Written by virtops.libvirt tests/lab/guest-image.sh.
datasource_list: [ NoCloud, None ]
network:
  config: disabled
# host keys are made at first boot; RSA is slow under TCG emulation
ssh_genkeytypes: [ ed25519, ecdsa ]
# there is no locales package: the default en_US.UTF-8 fails
locale: C.UTF-8
EOF

    # serial console getty on ttyS0
    mkdir -p "$r/etc/systemd/system/getty.target.wants"
    ln -sfn /lib/systemd/system/serial-getty@.service \
        "$r/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"

    # the guest agent: Debian starts it from a udev rule when the
    # org.qemu.guest_agent.0 port appears; make sure that rule is there
    grep -qs 'qemu-guest-agent' "$r"/lib/udev/rules.d/*qemu-guest-agent*.rules ||
        die "qemu-guest-agent's udev rule is missing in the rootfs"

    # no periodic jobs or boot-time housekeeping in short-lived test guests
    # (e2scrub_reap alone took 18 s of a TCG boot)
    rm -f "$r"/etc/systemd/system/multi-user.target.wants/e2scrub_reap.service \
        "$r"/etc/systemd/system/timers.target.wants/{apt-daily,apt-daily-upgrade,dpkg-db-backup,e2scrub_all,fstrim}.timer \
        "$r"/etc/systemd/system/getty.target.wants/getty@tty1.service
    # no VGA: no gettys on tty1..6 (getty-static starts tty2..6 without logind)
    ln -sfn /dev/null "$r/etc/systemd/system/getty-static.service"

    # root: no password, login locked (tests use the guest agent)
    sed -i -E 's/^root:[^:]*:/root:*:/' "$r/etc/shadow"
    # host keys are per VM (cloud-init makes them at first boot)
    rm -f "$r"/etc/ssh/ssh_host_*

    # small: no package caches or lists, docs, man pages, translations
    rm -rf "$r"/var/cache/apt/* "$r"/var/lib/apt/lists/*
    mkdir -p "$r/var/lib/apt/lists/partial" "$r/var/cache/apt/archives/partial"
    find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/*
    find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
    cat >"$r/etc/dpkg/dpkg.cfg.d/99-virtops-lab-nodoc" <<EOF
# Written by virtops.libvirt tests/lab/guest-image.sh: keep the test guest small.
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
EOF
    rm -f "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old
    for f in "$r"/var/log/*.log "$r"/var/log/apt/*; do
        [[ -f $f ]] && : >"$f"
    done
    rm -rf "$r"/tmp/* "$r"/var/tmp/*
}

# ------------------------------------------------------------------ build ---
cmd_build() {
    local key dir mir t0 rootfs logf kver vmlinuz initrd start c
    ((EUID == 0)) || die "build must run as root (debootstrap, chroot, unshare)"
    key=$(cache_key)
    dir=$BASE/$key
    if image_ready "$dir"; then
        printf '%s\n' "$dir"
        return 0
    fi
    for c in debootstrap mke2fs qemu-img unshare chroot flock; do
        command -v "$c" >/dev/null || die "$c is missing (tests/lab/install-deps.sh)"
    done
    begin_build "$key" image_ready || return 0
    mir=$(mirror)
    t0=$SECONDS
    start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    rootfs=$TMP_DIR/rootfs
    logf=$TMP_DIR/build.log
    log "building $SUITE guest image $key from $mir in $TMP_DIR (log: build.log)"

    debootstrap_root "$rootfs" "$logf" "$mir" configure_initramfs "${PACKAGES[@]}"

    log "configuring the guest [$((SECONDS - t0)) s]"
    configure_guest "$rootfs"

    vmlinuz=$(find "$rootfs/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)
    [[ -n $vmlinuz ]] || die "no kernel in $rootfs/boot"
    kver=${vmlinuz##*/vmlinuz-}
    initrd=$rootfs/boot/initrd.img-$kver
    [[ -s $initrd ]] || die "no initrd for kernel $kver"
    cp "$vmlinuz" "$TMP_DIR/vmlinuz"
    cp "$initrd" "$TMP_DIR/initrd.img"

    local used
    used=$(du -sx --block-size=1 "$rootfs" | cut -f1)
    log "making the root filesystem ($((used / 1048576)) MiB in $IMAGE_SIZE) [$((SECONDS - t0)) s]"
    run_logged "$logf" mke2fs -F -t ext4 -L root -m 1 -d "$rootfs" "$TMP_DIR/root.raw" "$IMAGE_SIZE"
    run_logged "$logf" e2fsck -fn "$TMP_DIR/root.raw"
    rm -rf --one-file-system "$rootfs"
    log "converting to compressed qcow2 [$((SECONDS - t0)) s]"
    run_logged "$logf" qemu-img convert -c -O qcow2 "$TMP_DIR/root.raw" "$TMP_DIR/root.qcow2"
    rm -f "$TMP_DIR/root.raw"

    local qsize vsize pkgs p
    qsize=$(stat -c %s "$TMP_DIR/root.qcow2")
    vsize=$(qemu-img info --output=json "$TMP_DIR/root.qcow2" | sed -nE 's/.*"virtual-size": *([0-9]+).*/\1/p' | head -n 1)
    pkgs=
    for p in "${PACKAGES[@]}"; do pkgs+="${pkgs:+, }$(json_str "$p")"; done
    cat >"$TMP_DIR/manifest.json" <<EOF
{
  "key": $(json_str "$key"),
  "suite": $(json_str "$SUITE"),
  "arch": $(json_str "$ARCH"),
  "variant": $(json_str "$VARIANT"),
  "mirror": $(json_str "$mir"),
  "packages": [$pkgs],
  "kernel_version": $(json_str "$kver"),
  "kernel_package": $(json_str "$KERNEL"),
  "cmdline": $(json_str "$CMDLINE"),
  "root_label": "root",
  "hostname": $(json_str "$GUEST_HOSTNAME"),
  "boot": {
    "virt_type": "qemu (TCG; nested KVM does not boot Linux on the lab machines)",
    "machine": "q35 or pc",
    "firmware": "none: direct kernel boot with vmlinuz, initrd.img and cmdline",
    "root_disk": "root.qcow2 (or an overlay of it) as the first virtio disk, vda",
    "nic": "virtio; DHCP on eth0 by ifupdown, with or without a seed",
    "guest_agent": "virtio channel org.qemu.guest_agent.0",
    "cloud_init": "NoCloud seed labelled cidata, as a virtio disk or a cdrom (sata, ide, scsi); network-config is ignored"
  },
  "built": $(json_str "$start"),
  "build_seconds": $((SECONDS - t0)),
  "rootfs_bytes": $used,
  "files": {
    "root.qcow2": {"format": "qcow2", "bytes": $qsize, "virtual_bytes": ${vsize:-0}},
    "vmlinuz": {"bytes": $(stat -c %s "$TMP_DIR/vmlinuz")},
    "initrd.img": {"bytes": $(stat -c %s "$TMP_DIR/initrd.img")}
  }
}
EOF
    chmod 0755 "$TMP_DIR"
    chmod 0644 "$TMP_DIR"/*
    # publish atomically: the key's directory exists only when complete
    mv -T "$TMP_DIR" "$dir"
    TMP_DIR=
    log "built $dir in $((SECONDS - t0)) s (root.qcow2 $((qsize / 1048576)) MiB)"
    printf '%s\n' "$dir"
}

cmd_path() {
    local dir
    dir=$BASE/$(cache_key)
    image_ready "$dir" || return 1
    printf '%s\n' "$dir"
}

cmd_prune() {
    prune "$(cache_key)"
}

main() {
    (($# == 1)) || usage
    case "$1" in
    build) cmd_build ;;
    path) cmd_path ;;
    key) cache_key ;;
    prune) cmd_prune ;;
    *) usage ;;
    esac
}

main "$@"
