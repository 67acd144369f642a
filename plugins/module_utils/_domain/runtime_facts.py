# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What is true of a running VM beyond its definition (:func:`runtime_facts`): state, id, CPU time,
uptime, snapshot count, graphics ports, console, disk sizes.  Read only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
from urllib.parse import parse_qs, urlsplit

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors, translate_libvirt_error
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.states import has_code, state_of


def qemu_pid_file(uri, name):
    """Where a local QEMU driver keeps the pid of domain ``name``, or None for other URIs.

    ``qemu:///system`` -> ``/run/libvirt/qemu/NAME.pid``; with ``?socket=DIR/SOCK`` (modular
    daemons, the lab) ``DIR/qemu/NAME.pid``; ``qemu:///session`` ->
    ``$XDG_RUNTIME_DIR/libvirt/qemu/run/NAME.pid``.  Remote URIs (a host, or ssh/tcp/tls) -> None.
    """
    parts = urlsplit(uri or "")
    if parts.scheme not in ("qemu", "qemu+unix") or parts.netloc:
        return None
    socket_path = (parse_qs(parts.query).get("socket") or [None])[0]
    if parts.path.rstrip("/") == "/system":
        run_dir = os.path.dirname(socket_path) if socket_path else "/run/libvirt"
        return os.path.join(run_dir, "qemu", name + ".pid")
    if parts.path.rstrip("/") == "/session":
        if socket_path:
            run_dir = os.path.dirname(socket_path)
        else:
            base = os.environ.get("XDG_RUNTIME_DIR") or os.path.join(os.path.expanduser("~"), ".cache")
            run_dir = os.path.join(base, "libvirt")
        return os.path.join(run_dir, "qemu", "run", name + ".pid")
    return None


def process_uptime(pid_file, uuid, proc="/proc"):
    """Seconds since the process in ``pid_file`` started, if it is the QEMU of domain ``uuid``; else None.

    The process must carry ``-uuid UUID`` on its command line, so a stale pid file, a reused pid
    or a pid from another pid namespace gives None rather than a wrong number.
    """
    try:
        with open(pid_file) as handle:
            pid = int(handle.read().strip())
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as handle:
            argv = handle.read().split(b"\0")
        with open(os.path.join(proc, str(pid), "stat")) as handle:
            stat = handle.read()
        with open(os.path.join(proc, "uptime")) as handle:
            boot_seconds = float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    wanted = uuid.lower().encode("ascii")
    if not any(argv[i] == b"-uuid" and argv[i + 1].lower() == wanted for i in range(len(argv) - 1)):
        return None
    try:
        # fields after "(comm)": state is field 3, starttime field 22 (clock ticks after boot)
        start_ticks = int(stat[stat.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None
    return max(0, int(boot_seconds - start_ticks / float(os.sysconf("SC_CLK_TCK"))))


def uptime_seconds(conn, dom):
    """Seconds since the domain's QEMU process started on this host, or None when that cannot be known.

    libvirt has no API for it; this reads the local QEMU driver's pid file and ``/proc`` (see
    :func:`qemu_pid_file`), so it works when the module runs on the hypervisor over a local
    ``qemu://`` URI and the user may read the pid file.  Reboots inside the guest do not reset it;
    a domain migrated or restored here counts from then.
    """
    with libvirt_errors("reading VM '%s'" % dom.name()):
        if not dom.isActive():
            return None
        uri = conn.getURI()
        uuid = dom.UUIDString()
    pid_file = qemu_pid_file(uri, dom.name())
    if pid_file is None:
        return None
    return process_uptime(pid_file, uuid)


def _port(value, active):
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if active and number > 0 else None


def graphics_facts(root, active):
    """``[{type, port, tls_port, listen}]``; ports only for a running domain that has them assigned."""
    out = []
    for node in root.findall("devices/graphics"):
        listen = node.get("listen") or node.get("socket")
        if listen is None:
            for child in node.findall("listen"):
                listen = child.get("address") or child.get("socket")
                if listen:
                    break
        out.append(dict(
            type=node.get("type"),
            port=_port(node.get("port"), active),
            tls_port=_port(node.get("tlsPort"), active),
            listen=listen,
        ))
    return out


def console_facts(root):
    """The first ``<console>`` (else ``<serial>``): ``{type, target, path, log_file}``, or None.

    ``path`` is the pty (``/dev/pts/N`` once running), file or socket path; for tcp/udp
    ``host:service``.  ``log_file`` is the ``<log file=...>`` that copies the output.
    """
    node = root.find("devices/console")
    if node is None:
        node = root.find("devices/serial")
    if node is None:
        return None
    source = node.find("source")
    path = node.get("tty") if node.get("type") == "pty" else None
    if source is not None:
        if source.get("path"):
            path = source.get("path")
        elif source.get("host") or source.get("service"):
            path = "%s:%s" % (source.get("host") or "", source.get("service") or "")
    return dict(
        type=node.get("type"),
        target=_xml.find_attr(node, "target", "type") or node.tag,
        path=path,
        log_file=_xml.find_attr(node, "log", "file"),
    )


_SOURCE_ATTRS = ("file", "dev", "dir", "name", "volume")


def disk_sizes(dom, root):
    """``{target: {capacity, allocation, physical}}`` (bytes) for every disk that has a source.

    Empty cdroms/floppies are skipped; a disk libvirt cannot measure (file missing, ...) gives
    None values instead of failing.
    """
    out = {}
    for disk in root.findall("devices/disk"):
        target = _xml.find_attr(disk, "target", "dev")
        source = disk.find("source")
        if not target or source is None or not any(source.get(a) for a in _SOURCE_ATTRS):
            continue
        try:
            capacity, allocation, physical = dom.blockInfo(target, 0)[:3]
        except libvirt.libvirtError as exc:
            if has_code(exc, "VIR_ERR_NO_DOMAIN"):
                raise translate_libvirt_error(exc, "reading the disks of VM '%s'" % dom.name())
            capacity = allocation = physical = None
        out[target] = dict(capacity=capacity, allocation=allocation, physical=physical)
    return out


def _snapshot_count(dom):
    try:
        return int(dom.snapshotNum(0))
    except libvirt.libvirtError as exc:
        if has_code(exc, "VIR_ERR_NO_SUPPORT"):
            return 0
        raise


def runtime_facts(conn, dom, root=None):
    """What is true of the domain now (see the keys below); ``id``, ``cpu_time_ns`` and
    ``uptime_seconds`` are None while it is not active.  ``root``: the live XML, parsed, when the
    caller has it already."""
    name = dom.name()
    state, reason = state_of(dom)
    with libvirt_errors("reading the run-time facts of VM '%s'" % name):
        active = bool(dom.isActive())
        dom_id = dom.ID() if active else -1
        info = dom.info()
        persistent = bool(dom.isPersistent())
        try:
            autostart = bool(dom.autostart())
        except libvirt.libvirtError:
            autostart = False  # transient domains on some drivers
        if root is None:
            root = _xml.parse(dom.XMLDesc(0), "domain XML")
        snapshots = _snapshot_count(dom)
        sizes = disk_sizes(dom, root)
    return dict(
        state=state,
        reason=reason,
        id=dom_id if dom_id is not None and dom_id >= 0 else None,
        active=active,
        persistent=persistent,
        autostart=autostart,
        cpu_time_ns=int(info[4]) if active else None,
        snapshot_count=snapshots,
        uptime_seconds=uptime_seconds(conn, dom) if active else None,
        graphics=graphics_facts(root, active),
        console=console_facts(root),
        disk_sizes=sizes,
    )
