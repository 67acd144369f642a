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
# Downloads happen only in 'build', from the Debian mirror of the machine's apt sources (mirror.sh,
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

CACHE_ROOT=${VIRTOPS_CACHE_DIR:-${HOME:?set HOME or VIRTOPS_CACHE_DIR}/.cache/virtops-libvirt}
CACHE_ROOT=${CACHE_ROOT%/}
BASE=$CACHE_ROOT/host-root
LOCK_WAIT=${VIRTOPS_GUEST_LOCK_WAIT_SECS:-1800}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

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

# mirror(): the Debian mirror (VIRTOPS_GUEST_MIRROR, else the machine's apt sources)
# shellcheck source=tests/lab/mirror.sh
. "$HERE/mirror.sh"

cache_key() {
    {
        printf 'suite=%s\narch=%s\nvariant=%s\nmirror=%s\nbase=%s\nrole=%s\n' \
            "$SUITE" "$ARCH" "$VARIANT" "$(mirror)" "${BASE_PACKAGES[*]}" "${ROLE_PACKAGES[*]}"
        cat "$SELF" "$HERE/mirror.sh"
    } | sha256sum | cut -c1-12
}

root_ready() { [[ -e $1/.complete && -x $1/rootfs/usr/bin/python3 ]]; }

take_lock() {
    mkdir -p "$BASE"
    exec 9>"$BASE/.lock"
    if ! flock -n 9; then
        log "waiting for another build/prune (lock $BASE/.lock, up to ${LOCK_WAIT}s)"
        flock -w "$LOCK_WAIT" 9 || die "could not take $BASE/.lock"
    fi
}

TMP_DIR=
CHILD=
cleanup() {
    if [[ -n $CHILD ]]; then
        kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    if [[ -n $TMP_DIR && -d $TMP_DIR ]]; then
        rm -rf --one-file-system "$TMP_DIR"
    fi
}

run_logged() { # LOGFILE CMD...
    local logf=$1 rc=0
    shift
    "$@" >>"$logf" 2>&1 </dev/null &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=
    if ((rc)); then
        log "failed ($rc): $*"
        tail -n 30 "$logf" >&2
        return "$rc"
    fi
}

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
    take_lock
    if root_ready "$dir"; then
        printf '%s\n' "$dir"
        return 0
    fi
    rm -rf --one-file-system "$BASE"/.build-*
    [[ ! -e $dir ]] || rm -rf --one-file-system "$dir"
    mir=$(mirror)
    t0=$SECONDS
    TMP_DIR=$(mktemp -d "$BASE/.build-$key.XXXXXX")
    trap cleanup EXIT
    trap 'log "interrupted"; exit 130' INT TERM HUP
    rootfs=$TMP_DIR/rootfs
    logf=$TMP_DIR/build.log
    log "building a $SUITE host root $key from $mir in $TMP_DIR (log: build.log)"

    # stage 1 downloads and unpacks; stage 2 configures inside namespaces without network
    run_logged "$logf" debootstrap --foreign --arch="$ARCH" --variant="$VARIANT" \
        --include="$(
            IFS=,
            echo "${BASE_PACKAGES[*]}"
        )" "$SUITE" "$rootfs" "$mir"
    log "debootstrap stage 2 (configure, no network) [$((SECONDS - t0)) s]"
    run_logged "$logf" unshare --mount --net --pid --uts --ipc --fork --kill-child --propagation private \
        chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive /debootstrap/debootstrap --second-stage
    [[ ! -e $rootfs/debootstrap ]] || die "debootstrap stage 2 did not finish (see $logf)"

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
    local key d
    key=$(cache_key)
    [[ -d $BASE ]] || return 0
    take_lock
    for d in "$BASE"/* "$BASE"/.build-*; do
        [[ -d $d && ${d##*/} != "$key" ]] || continue
        log "removing $d"
        rm -rf --one-file-system "$d"
    done
}

case "${1:-}" in
build) cmd_build ;;
path) cmd_path ;;
key) cache_key ;;
prune) cmd_prune ;;
*) usage ;;
esac
