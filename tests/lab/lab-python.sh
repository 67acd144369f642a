#!/usr/bin/env bash
# lab-python.sh - a Python interpreter that runs "on" lab hypervisor N.
#
#   lab-python.sh N [python arguments...]
#   LAB_HOST=N lab-python.sh [python arguments...]
#
# Execs Python inside lab host N's network namespace (<LAB_NS_PREFIX>N) and the private mount
# namespace of its libvirtd (the one where /etc/libvirt, /var/lib/libvirt and /run/libvirt are that
# host's own directories).  A module run with this interpreter therefore sees the lab host's
# firewall, bridges and libvirt configuration files, as a module on a real hypervisor would; use it
# as ansible_python_interpreter (the value "PATH/lab-python.sh N") for tasks that must run on the
# hypervisor itself, such as firewall changes.  Nothing of the machine's own namespaces is touched.
# Ansible runs the interpreter path as one word, so as ansible_python_interpreter give the path alone
# and the host number in LAB_HOST (the task's environment).
#
# Environment: LAB_NS_PREFIX and LAB_STATE_DIR as for lab.sh; LAB_HOST when N is not the first
# argument; LAB_PYTHON is the interpreter to exec (default: python3 from PATH).  The lab must be up
# (tests/lab/lab.sh up).
set -euo pipefail

PROG=${0##*/}
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

if [[ ${1:-} =~ ^[0-9]+$ ]]; then
    n=$1
    shift
else
    n=${LAB_HOST:-}
    [[ -n $n ]] || die "usage: $PROG N [python arguments...]  or  LAB_HOST=N $PROG [python arguments...]"
fi
[[ $n =~ ^[1-9][0-9]?$ ]] || die "lab host number must be 1..20, got '$n'"
((EUID == 0)) || die "must run as root (entering namespaces)"

state_root=${LAB_STATE_DIR:-/var/tmp/virtops-lab}
state_root=${state_root%/}
ns=${LAB_NS_PREFIX:-virtops-lab}$n
netns=/run/netns/$ns
pidfile=$state_root/host$n/pids/libvirtd.pid
python=${LAB_PYTHON:-python3}

[[ -e $netns ]] || die "network namespace $ns does not exist: is the lab up (LAB_NS_PREFIX, LAB_STATE_DIR)?"
[[ -r $pidfile ]] || die "$pidfile does not exist: lab host $n is not running"
pid=$(tr -dc '0-9' <"$pidfile")
[[ -n $pid && -d /proc/$pid ]] || die "libvirtd of lab host $n (pid file $pidfile) is not running"
[[ $(cat "/proc/$pid/comm" 2>/dev/null) == libvirtd* ]] || die "pid $pid in $pidfile is not a libvirtd"
# the daemon must live in that network namespace, else its mount namespace is not the lab host's
[[ $(readlink "/proc/$pid/ns/net") == "net:[$(stat -L -c %i "$netns")]" ]] ||
    die "libvirtd pid $pid does not run in network namespace $ns"
command -v "$python" >/dev/null || die "no Python interpreter '$python' (set LAB_PYTHON)"
python=$(command -v "$python")

exec nsenter --net="$netns" --mount="/proc/$pid/ns/mnt" -- "$python" "$@"
