# shellcheck shell=bash
# build-lib.sh - sourced by guest-image.sh and host-root.sh, the two cached builds of the lab: the
# cache directory, the Debian mirror, the build lock, logged steps and the clean-up of a build.
# The sourcing script sets PROG and CACHE_NAME first; it gets CACHE_ROOT and BASE (its cache
# directory, $CACHE_ROOT/$CACHE_NAME), and uses TMP_DIR for the build in progress.

CACHE_ROOT=${VIRTOPS_CACHE_DIR:-${HOME:?set HOME or VIRTOPS_CACHE_DIR}/.cache/virtops-libvirt}
CACHE_ROOT=${CACHE_ROOT%/}
BASE=$CACHE_ROOT/${CACHE_NAME:?set CACHE_NAME before sourcing build-lib.sh}
LOCK_WAIT=${VIRTOPS_GUEST_LOCK_WAIT_SECS:-1800}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The Debian mirror: VIRTOPS_GUEST_MIRROR, else the first .../debian URI of the
# machine's apt sources (one-line and deb822 formats), else deb.debian.org.
mirror() {
    local m=${VIRTOPS_GUEST_MIRROR:-}
    if [[ -z $m ]]; then
        m=$(
            {
                sed -nE 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' \
                    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
                sed -nE 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | tr -s '[:blank:]' '\n'
            } | grep -E '^https?://[^[:space:]]+/debian/?$' | head -n 1 || true
        )
    fi
    m=${m:-http://deb.debian.org/debian}
    printf '%s' "${m%/}"
}

# One build or prune at a time per cache directory.
take_lock() {
    mkdir -p "$BASE"
    exec 9>"$BASE/.lock"
    if ! flock -n 9; then
        log "waiting for another build/prune (lock $BASE/.lock, up to ${LOCK_WAIT}s)"
        flock -w "$LOCK_WAIT" 9 || die "could not take $BASE/.lock"
    fi
}

# in_rootfs ROOTFS: set IN_ROOTFS to the command prefix that runs a command
# chrooted into ROOTFS, in fresh mount, network, PID, UTS and IPC namespaces:
# nothing it mounts (proc, sys) is seen by the machine, no daemon a maintainer
# script starts survives it (the PID namespace dies with it), and it has no
# network at all.  (An array, not a function: run_logged must be able to stop it.)
# shellcheck disable=SC2034 # used by the sourcing script
IN_ROOTFS=()
in_rootfs() {
    # shellcheck disable=SC2034 # used by the sourcing script
    IN_ROOTFS=(
        unshare --mount --net --pid --uts --ipc --fork --kill-child --propagation private
        chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
        LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true
    )
}

# run_logged LOGFILE CMD...: run CMD with its output in LOGFILE; on failure show
# the tail.  CMD runs in the background so that a signal stops it (by its pid)
# before the temporary build directory is removed.
CHILD=
run_logged() {
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

# The EXIT trap of a build: stop its running step, remove its temporary directory.
TMP_DIR=
cleanup() {
    if [[ -n $CHILD ]]; then
        kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    if [[ -n $TMP_DIR && -d $TMP_DIR ]]; then
        rm -rf --one-file-system "$TMP_DIR"
    fi
}

# begin_build KEY READY: start the build of $BASE/KEY under the lock, unless `READY DIR` says that a
# build that ran while this one waited for the lock finished it (then print DIR and return 1).
# Removes the leftovers of killed builds, makes TMP_DIR and sets the traps that remove it again.
begin_build() {
    local key=$1 ready=$2 dir=$BASE/$1
    take_lock
    if "$ready" "$dir"; then
        printf '%s\n' "$dir"
        return 1
    fi
    rm -rf --one-file-system "$BASE"/.build-*
    [[ ! -e $dir ]] || rm -rf --one-file-system "$dir" # incomplete: never used
    TMP_DIR=$(mktemp -d "$BASE/.build-$key.XXXXXX")
    trap cleanup EXIT
    trap 'log "interrupted"; exit 130' INT TERM HUP
}

# debootstrap_root ROOTFS LOGFILE MIRROR HOOK PACKAGES...: debootstrap of $SUITE/$ARCH/$VARIANT with
# PACKAGES.  Stage 1 downloads and unpacks (nothing runs in ROOTFS); then the function HOOK (or
# "true") gets ROOTFS; stage 2 configures the packages inside in_rootfs, without network.
debootstrap_root() {
    local rootfs=$1 logf=$2 mir=$3 hook=$4 t0=$SECONDS
    shift 4
    log "debootstrap stage 1 (download, unpack)"
    run_logged "$logf" debootstrap --foreign --arch="$ARCH" --variant="$VARIANT" \
        --include="$(
            IFS=,
            echo "$*"
        )" "$SUITE" "$rootfs" "$mir"
    "$hook" "$rootfs"
    log "debootstrap stage 2 (configure, no network) [$((SECONDS - t0)) s]"
    in_rootfs "$rootfs"
    run_logged "$logf" "${IN_ROOTFS[@]}" /debootstrap/debootstrap --second-stage
    [[ ! -e $rootfs/debootstrap ]] || die "debootstrap stage 2 did not finish (see $logf)"
}

# prune KEY: remove the cached builds with another key and leftovers of killed builds.
prune() {
    local key=$1 d
    [[ -d $BASE ]] || return 0
    take_lock # no build runs meanwhile: its .build-* dir may go too
    for d in "$BASE"/* "$BASE"/.build-*; do
        [[ -d $d && ${d##*/} != "$key" ]] || continue
        log "removing $d"
        rm -rf --one-file-system "$d"
    done
}
