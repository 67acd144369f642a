# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The serial console of a VM, read (:func:`read_serial`).

* A ``<serial type='file'>`` (or a pty serial with ``<log file=...>``): the file is read on the
  node the module runs on, which must be the hypervisor host (libvirtd writes it there): the last
  ``lines`` lines, or what was written since byte ``offset`` (``next_offset`` of an earlier read).
* A ``<serial type='pty'>`` without a log, or with ``input`` to write: the console is opened through libvirt
  (``virDomainOpenConsole``, works over remote URIs too), ``input`` is written to it and what the
  guest writes during ``seconds`` is returned: a pty keeps no history.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._console.stream import libvirt_stream
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError

#: at most this many bytes are returned of a file
MAX_BYTES = 1024 * 1024


def serial_source(root):
    """``{type, path, alias}`` of the first serial port (else console) of domain XML ``root``, or None.

    ``path`` is the file written (a file serial, or the ``<log>`` of a pty), else None."""
    for tag in ("devices/serial", "devices/console"):
        for node in root.findall(tag):
            kind = node.get("type")
            log = _xml.find_attr(node, "log", "file")
            path = _xml.find_attr(node, "source", "path") if kind == "file" else log
            return dict(type=kind, path=path, alias=_xml.find_attr(node, "alias", "name"))
    return None


def tail(data, lines):
    """The last ``lines`` lines of ``data`` (bytes) and where they start."""
    end = len(data)
    if data.endswith(b"\n"):
        end -= 1
    start = end
    for _count in range(lines):
        start = data.rfind(b"\n", 0, start)
        if start < 0:
            return 0
    return start + 1


def read_file(path, lines=100, offset=None):
    """What the serial log ``path`` holds: the last ``lines`` lines, or everything from ``offset``."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            rotated = offset is not None and offset > size
            if offset is not None and not rotated:
                start = max(offset, size - MAX_BYTES)
                handle.seek(start)
                data = handle.read(size - start)
            else:
                start = max(size - MAX_BYTES, 0)
                handle.seek(start)
                data = handle.read(size - start)
                cut = tail(data, lines)
                start, data = start + cut, data[cut:]
    except (IOError, OSError) as exc:
        if not os.path.exists(path):
            raise NotFoundError("the serial log %s does not exist on this node: the module reads it where it runs, so "
                                "run it on the hypervisor host (delegate_to), and the VM must have run" % path)
        raise ConflictError("cannot read the serial log %s: %s" % (path, exc))
    text = data.decode("utf-8", "replace")
    return dict(offset=start, next_offset=start + len(data), size=size, rotated=rotated,
                text=text, lines=text.splitlines())


def read_stream(conn, dom, alias, seconds, input_data=None, sleep=time.sleep, clock=time.monotonic):
    """What the guest writes to its pty console during ``seconds`` (after ``input_data`` is sent)."""
    name = dom.name()
    data = bytearray()
    with libvirt_stream(conn, libvirt.VIR_STREAM_NONBLOCK, "opening the serial console of VM '%s'" % name) as stream:
        with libvirt_errors("using the serial console of VM '%s'" % name):
            dom.openConsole(alias, stream, 0)
            if input_data:
                payload = input_data.encode("utf-8") if isinstance(input_data, str) else input_data
                while payload:
                    sent = stream.send(payload)
                    if sent == -2:
                        dom.isActive()
                        sleep(0.05)
                        continue
                    payload = payload[sent:]
            deadline = clock() + seconds
            while clock() < deadline:
                chunk = stream.recv(65536)
                if chunk == -2:
                    # without an event loop, data a remote stream received waits in libvirt's client until
                    # some call reads the connection: a cheap one lets it in (and notices a VM that stopped)
                    if not dom.isActive():
                        break
                    sleep(0.1)
                    continue
                if not chunk or isinstance(chunk, int):
                    break
                data.extend(chunk[:max(MAX_BYTES - len(data), 0)])
            stream.finish()
    text = bytes(data).decode("utf-8", "replace")
    return dict(text=text, lines=text.splitlines(), seconds=seconds)


def read_serial(conn, dom, lines=100, offset=None, seconds=2, input_data=None):
    """The serial console of VM ``dom``: ``{source, path, ...}`` plus :func:`read_file`'s or
    :func:`read_stream`'s keys."""
    name = dom.name()
    with libvirt_errors("reading VM '%s'" % name):
        active = bool(dom.isActive())
        root = _xml.parse(dom.XMLDesc(0), "domain XML")
    source = serial_source(root)
    if source is None:
        raise InvalidInputError("VM '%s' has no serial port or console: give it serial (type file, or pty)" % name)
    if input_data and source["type"] != "pty":
        raise InvalidInputError("serial.input: VM '%s' has a serial port of type %r; input is written to a pty console "
                                "only (serial type pty)" % (name, source["type"]))
    if source["path"] and not input_data:
        out = read_file(source["path"], lines, offset)
        out.update(source="file", path=source["path"], type=source["type"])
        return out
    if source["type"] != "pty":
        raise InvalidInputError("VM '%s': a serial port of type %r is neither a file nor a pty; it cannot be read here"
                                % (name, source["type"]))
    if not active:
        raise ConflictError("VM '%s' is not running: its pty console (no log file) only exists while it runs" % name)
    out = read_stream(conn, dom, source["alias"], seconds, input_data)
    out.update(source="pty", path=None, type="pty")
    return out
