# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What makes port forwards survive a network restart or a reboot: the record of each network's
forwards (``/etc/libvirt/virtops/port-forwards/<net>.json``: the forwards, the network's UUID and
the exact commands that apply and remove the rules), and the libvirt network hook
``/etc/libvirt/hooks/network.d/virtops-port-forwards`` (libvirt >= 6.5 runs every executable in
``network.d``), which runs those commands when libvirt reports the network ``started`` and
``stopped``.  libvirt looks for hooks only when the daemon starts or reloads, so installing the
first network hook reloads the daemon (SIGHUP, what ``systemctl reload`` does).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import signal
import socket
import stat
import struct
import sys

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError

DAEMONS = ("virtnetworkd", "libvirtd")

HOOK_SCRIPT = '''#!%(python)s
# -*- coding: utf-8 -*-
# libvirt network hook of the virtops.libvirt collection, installed by its network module.
# When libvirt has started a network it applies the port forwards recorded for that network in
# %(state_dir)s/<network>.json, and removes them when libvirt has stopped it.
# It never fails, so a broken forward cannot keep a network from starting.  Do not edit: the
# module rewrites this file.
import json
import os
import subprocess
import sys

STATE_DIR = %(state_dir)r


def log(text):
    sys.stderr.write("virtops-port-forwards: %%s\\n" %% text)


def run(commands):
    for cmd in commands:
        for _attempt in range(100 if cmd.get("repeat") else 1):
            proc = subprocess.Popen(cmd["argv"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, universal_newlines=True)
            _out, err = proc.communicate()
            if proc.returncode != 0:
                if not cmd.get("ignore_errors") and not cmd.get("repeat"):
                    log("%%s failed (rc %%d): %%s" %% (" ".join(cmd["argv"]), proc.returncode, err.strip()))
                break


def main(argv):
    data = sys.stdin.read()
    if len(argv) < 3 or argv[2] not in ("started", "stopped"):
        return 0
    name = argv[1]
    path = os.path.join(STATE_DIR, name + ".json")
    if "/" in name or name in (".", "..") or not os.path.isfile(path):
        return 0
    try:
        with open(path) as handle:
            state = json.load(handle)
    except (IOError, OSError, ValueError) as exc:
        log("cannot read %%s: %%s" %% (path, exc))
        return 0
    if argv[2] == "stopped":
        run(state.get("remove") or [])
    elif state.get("uuid") and "<uuid>%%s</uuid>" %% state["uuid"] not in data:
        log("%%s was written for another network called %%s (UUID %%s): not applied" %% (path, name, state["uuid"]))
    else:
        run(state.get("apply") or [])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
'''


def hook_python():
    """The interpreter the hook runs with: the system's Python 3 (the hook needs only the stdlib)."""
    for path in ("/usr/bin/python3", "/usr/libexec/platform-python", "/usr/local/bin/python3"):
        if os.access(path, os.X_OK):
            return path
    return sys.executable


def hook_text(state_dir, python=None):
    return HOOK_SCRIPT % dict(python=python or hook_python(), state_dir=state_dir)


def network_hook_present(hooks_dir):
    """Whether libvirt would find a network hook there (its virHookCheck: ``network`` or an
    executable in ``network.d``)."""
    path = os.path.join(hooks_dir, "network")
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return True
    directory = path + ".d"
    try:
        names = os.listdir(directory)
    except (IOError, OSError):
        return False
    return any(os.path.isfile(os.path.join(directory, n)) and os.access(os.path.join(directory, n), os.X_OK) for n in names)


def read_file(path):
    """(text, mode) of a file, or (None, None) when it does not exist."""
    try:
        with open(path) as handle:
            text = handle.read()
        return text, stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None, None
    except (IOError, OSError) as exc:
        raise BackendError("cannot read %s: %s" % (path, exc))


def remove_file(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except (IOError, OSError) as exc:
        raise BackendError("cannot remove %s: %s" % (path, exc))


# --------------------------------------------------------------------------- daemon reload ---

def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def _socket_peer(path):
    """pid of the process that listens on the unix socket ``path`` (SO_PEERCRED), or None."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(5)
        sock.connect(path)
        creds = sock.getsockopt(socket.SOL_SOCKET, getattr(socket, "SO_PEERCRED", 17), struct.calcsize("3i"))
        return struct.unpack("3i", creds)[0]
    except (IOError, OSError):
        return None
    finally:
        sock.close()


def _uri_socket(uri):
    match = re.search(r"[?&]socket=([^&]+)", uri or "")
    return match.group(1) if match else None


def network_daemon_pids(uri):
    """pids of the libvirt daemon that runs network hooks for ``uri`` on this machine.

    The daemon listening on the URI's socket when that is a libvirtd or virtnetworkd (not a
    socket-activating systemd); else the root libvirtd/virtnetworkd processes of this network
    namespace, virtnetworkd preferred.
    """
    sockets = [_uri_socket(uri)] if _uri_socket(uri) else ["/run/libvirt/virtnetworkd-sock", "/run/libvirt/libvirt-sock"]
    for path in sockets:
        if not os.path.exists(path):
            continue
        pid = _socket_peer(path)
        if pid and pid > 1 and _comm(pid) in DAEMONS:
            return [pid]
    try:
        own_net = os.readlink("/proc/self/ns/net")
        entries = os.listdir("/proc")
    except (IOError, OSError):
        return []
    found = dict((d, []) for d in DAEMONS)
    for entry in entries:
        if not entry.isdigit():
            continue
        pid = int(entry)
        comm = _comm(pid)
        if comm not in DAEMONS:
            continue
        try:
            if os.stat("/proc/%d" % pid).st_uid != 0 or os.readlink("/proc/%d/ns/net" % pid) != own_net:
                continue
        except (IOError, OSError):
            continue
        found[comm].append(pid)
    return sorted(found["virtnetworkd"]) or sorted(found["libvirtd"])


def reload_daemon(pid):
    """Make a libvirt daemon reload (as ``systemctl reload`` does): it looks for hooks again."""
    try:
        os.kill(pid, signal.SIGHUP)
    except (IOError, OSError) as exc:
        raise BackendError("could not make the libvirt daemon (pid %d) reload: %s" % (pid, exc))
