#!/usr/bin/env bash
# host-libvirtd.sh - start or stop the libvirtd installed in a test host root (host-root.sh), the
# way a service manager would on a real host; this machine has none (no systemd as PID 1).
#
#   host-libvirtd.sh start ROOT   start ROOT's /usr/sbin/libvirtd, chrooted, in fresh mount, network,
#                                 PID, UTS and IPC namespaces (dnsmasq and whatever else it starts
#                                 live and die there); wait until it answers on ROOT's
#                                 /run/libvirt/libvirt-sock
#   host-libvirtd.sh stop ROOT    stop it: the namespace's first process, by the pid file this
#                                 script wrote (ROOT.libvirtd.pid, beside the root), and with it
#                                 every process of the namespace
set -euo pipefail
PROG=${0##*/}
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

(($# == 2)) || die "usage: $PROG start|stop ROOT"
cmd=$1
root=$(readlink -f "$2")
[[ -x $root/usr/sbin/libvirtd ]] || die "$root has no /usr/sbin/libvirtd"
pidfile=$root.libvirtd.pid
logfile=$root.libvirtd.log
sock=$root/run/libvirt/libvirt-sock

alive() { [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case $cmd in
start)
    ! alive || die "already running (pid $(cat "$pidfile"))"
    # shellcheck disable=SC2016 # expanded by the inner shell
    setsid unshare --mount --net --pid --uts --ipc --fork --kill-child --propagation private \
        /bin/bash -c '
r=$1
mount -t proc proc "$r/proc"
mount -t sysfs sysfs "$r/sys"
ip link set lo up
hostname virtops-host
chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 /usr/sbin/libvirtd &
wait
' host-libvirtd "$root" >"$logfile" 2>&1 </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 1 120); do
        if virsh -c "qemu:///system?socket=$sock" version >/dev/null 2>&1; then
            log "libvirtd in $root answers (namespace pid $(cat "$pidfile"))"
            exit 0
        fi
        alive || { cat "$logfile" >&2; die "libvirtd in $root exited"; }
        sleep 0.5
    done
    cat "$logfile" >&2
    die "libvirtd in $root does not answer on $sock after 60 s"
    ;;
stop)
    if alive; then
        kill "$(cat "$pidfile")"
        for _ in $(seq 1 40); do alive || break; sleep 0.25; done
        if alive; then kill -KILL "$(cat "$pidfile")"; fi
    fi
    rm -f "$pidfile"
    ;;
*) die "usage: $PROG start|stop ROOT" ;;
esac
