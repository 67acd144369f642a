#!/usr/bin/env bash
# host-root.sh - a cached root filesystem of a bare Debian host, for testing what the hypervisor role
# does to a host's operating system (packages, KVM access, configuration files, users).
#
# The root is a debootstrap (minbase) of Debian with Python and python3-apt, whose apt cache already
# holds every .deb the role installs on an x86_64 Debian host (with their dependencies and
# recommends, as apt would pick them), and the package lists they came from.  A test copies it and
# runs modules inside it with host-python.sh: chrooted, in fresh mount, network, PID, UTS and IPC
# namespaces, so apt installs from the cache and can reach nothing at all.
#
# Usage: host-root.sh build | path | key | prune
#   build  build the root unless it is cached; print its directory (the only stdout line)
#   path   print the directory of the cached root; exit 1 if it is not built
#   key    print the cache key (a short hash of every input, this script included)
#   prune  remove cached roots with another key (and leftovers of failed builds)
# Downloads happen only in 'build', from the Debian mirror of the machine's apt sources (build-lib.sh,
# as for guest-image.sh).  See tests/lab/README.md.
set -euo pipefail

PROG=${0##*/}
SELF=$(readlink -f "${BASH_SOURCE[0]}")
HERE=$(dirname "$SELF")

SUITE=${VIRTOPS_GUEST_SUITE:-bookworm}
ARCH=amd64
VARIANT=minbase
# what Ansible needs on the host (python3-apt: the apt module)
BASE_PACKAGES=(python3 python3-apt)
# The packages of roles/hypervisor on an x86_64 Debian host (vars/main.yml: the Debian family's
# packages and python_packages, and _hypervisor_arch_packages.Debian.x86_64).  When the role's list
# grows and this one does not, the role's test fails: apt finds no network in the test's namespace.
ROLE_PACKAGES=(
    libvirt-daemon-system libvirt-clients qemu-utils dnsmasq-base xorriso qemu-system-x86 ovmf
    python3-libvirt python3-lxml python3-pycdlib python3-yaml
)

CACHE_NAME=host-root
# CACHE_ROOT, BASE, log, die, mirror, begin_build, debootstrap_root, run_logged, prune (build-lib.sh)
# shellcheck source=tests/lab/build-lib.sh
. "$HERE/build-lib.sh"

usage() {
    cat >&2 <<EOF
usage: $PROG build   build the host root unless cached; print its directory
       $PROG path    print the directory of the cached root; exit 1 if not built
       $PROG key     print the cache key
       $PROG prune   remove cached roots with other keys
cache: $BASE (VIRTOPS_CACHE_DIR)
EOF
    exit 2
}


cache_key() {
    {
        printf 'suite=%s\narch=%s\nvariant=%s\nmirror=%s\nbase=%s\nrole=%s\n' \
            "$SUITE" "$ARCH" "$VARIANT" "$(mirror)" "${BASE_PACKAGES[*]}" "${ROLE_PACKAGES[*]}"
        cat "$SELF" "$HERE/build-lib.sh"
    } | sha256sum | cut -c1-12
}

root_ready() { [[ -e $1/.complete && -x $1/rootfs/usr/bin/python3 ]]; }

cmd_build() {
    local key dir mir t0 rootfs logf c n
    ((EUID == 0)) || die "build must run as root (debootstrap, chroot, unshare)"
    key=$(cache_key)
    dir=$BASE/$key
    if root_ready "$dir"; then
        printf '%s\n' "$dir"
        return 0
    fi
    for c in debootstrap apt-get unshare chroot flock; do
        command -v "$c" >/dev/null || die "$c is missing (tests/lab/install-deps.sh)"
    done
    begin_build "$key" root_ready || return 0
    mir=$(mirror)
    t0=$SECONDS
    rootfs=$TMP_DIR/rootfs
    logf=$TMP_DIR/build.log
    log "building a $SUITE host root $key from $mir in $TMP_DIR (log: build.log)"

    debootstrap_root "$rootfs" "$logf" "$mir" true "${BASE_PACKAGES[@]}"

    # The package lists and the role's packages, fetched by the machine's apt-get working on the
    # root's apt directories and dpkg status: the root's sources and keyring, its architecture.
    log "downloading the role's packages into the root's apt cache [$((SECONDS - t0)) s]"
    printf 'deb %s %s main\n' "$mir" "$SUITE" >"$rootfs/etc/apt/sources.list"
    local -a apt_root=(
        apt-get -q -y -o "Dir=$rootfs" -o "Dir::State::status=$rootfs/var/lib/dpkg/status"
        -o "APT::Architecture=$ARCH" -o "Debug::NoLocking=true" -o "APT::Sandbox::User=root"
    )
    run_logged "$logf" "${apt_root[@]}" update
    run_logged "$logf" "${apt_root[@]}" install --download-only "${ROLE_PACKAGES[@]}"
    n=$(find "$rootfs/var/cache/apt/archives" -maxdepth 1 -name '*.deb' | wc -l)
    ((n > 0)) || die "no package was downloaded (see $logf)"

    # a chroot: no daemon is started by a maintainer script (the test's namespaces would kill it)
    printf '#!/bin/sh\n# Written by virtops.libvirt tests/lab/host-root.sh: a test root, start nothing.\nexit 101\n' \
        >"$rootfs/usr/sbin/policy-rc.d"
    chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
    printf 'virtops-host\n' >"$rootfs/etc/hostname"
    : >"$rootfs/etc/resolv.conf"
    rm -rf "$rootfs"/tmp/* "$rootfs"/var/tmp/*
    cp "$logf" "$TMP_DIR/build-$(date -u +%Y%m%dT%H%M%SZ).log"
    rm -f "$logf"
    printf 'packages=%s\nbuild_seconds=%s\ndebs=%s\n' "${ROLE_PACKAGES[*]}" "$((SECONDS - t0))" "$n" \
        >"$TMP_DIR/.complete"
    chmod 0755 "$TMP_DIR"
    mv -T "$TMP_DIR" "$dir"
    TMP_DIR=
    log "built $dir in $((SECONDS - t0)) s ($n packages in its apt cache)"
    printf '%s\n' "$dir"
}

cmd_path() {
    local dir
    dir=$BASE/$(cache_key)
    root_ready "$dir" || return 1
    printf '%s\n' "$dir"
}

cmd_prune() {
    prune "$(cache_key)"
}

case "${1:-}" in
build) cmd_build ;;
path) cmd_path ;;
key) cache_key ;;
prune) cmd_prune ;;
*) usage ;;
esac
