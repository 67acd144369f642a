#!/usr/bin/env bash
# host-python.sh - a Python interpreter "on" a test host root (host-root.sh), for Ansible.
#
# Used as ansible_python_interpreter with the local connection and pipelining (the module comes on
# stdin).  Runs the root's own /usr/bin/python3 chrooted into HOST_ROOT, in fresh mount, network,
# PID, UTS and IPC namespaces: the host has no network at all, nothing it mounts is seen by the
# machine, and no process it starts outlives the module.  /proc is its own; /dev is the root's own
# directory of device nodes (debootstrap's, and a kvm node the test makes: a chmod of /dev/kvm there
# changes nothing of the machine's).  A libvirtd the test started in the root (host-libvirtd.sh)
# answers on the root's /run/libvirt/libvirt-sock.
#
#   HOST_ROOT      the root filesystem (required)
#   HOST_TMP       a directory bound at the same path inside the root: Ansible's remote_tmp, so that
#                  files the controller puts there (copy, template) are where the module looks
set -euo pipefail
: "${HOST_ROOT:?set HOST_ROOT to the test host root}"
[[ -x $HOST_ROOT/usr/bin/python3 ]] || { echo "host-python.sh: no python3 in $HOST_ROOT" >&2; exit 127; }

# shellcheck disable=SC2016 # expanded by the inner shell
exec unshare --mount --net --pid --uts --ipc --fork --kill-child --propagation private \
    /bin/bash -c '
set -euo pipefail
r=$1
shift
mount -t proc proc "$r/proc"
if [[ -n ${HOST_TMP:-} ]]; then
    mkdir -p "$HOST_TMP" "$r$HOST_TMP"
    mount --bind "$HOST_TMP" "$r$HOST_TMP"
fi
hostname virtops-host
exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive /usr/bin/python3 "$@"
' host-python "$HOST_ROOT" "$@"
