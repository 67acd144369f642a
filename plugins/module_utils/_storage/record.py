# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The record the collection keeps on each volume file it makes: formats are recorded, never re-probed.

When a module of this collection creates or fills a volume, it writes a small JSON record into the
extended attribute ``user.virtops`` of the volume's file::

    {"v": 1, "format": "raw", "made_by": "volume", "backing_format": null,
     "source": "https://example.com/img.raw", "source_sha256": "...", "checksum": "sha256:...",
     "complete": true, "filler": null}

* ``format`` is what consumers use from then on, whatever libvirt later probes from the content (a
  guest can write a qcow2 header into its raw disk; libvirt's directory pools probe every file);
* for a filled volume, ``source`` (an URL without user, password, query and fragment; a path),
  ``checksum`` (the one the fill was verified against, or the SHA-256 of what was read) and
  ``complete``: false from the volume's creation until its fill has finished, so an interrupted fill
  (libvirtd or the node went down) is known and redone by the next run; ``filler`` names the process
  that is filling it (host, boot id, pid, start time), so another run can tell a fill in progress
  from a dead one.

A record is kept only where the module sees the volume's file: a local URI (the task runs on the
hypervisor), a file whose modification time and size match libvirt's report of the volume (the same
file, not a namesake in another mount namespace), and a file system with user extended attributes.
Elsewhere (remote URI, block devices, NFS without xattrs) nothing is recorded and consumers fall back
to libvirt's report checked by ``_trust.check_reported``.  Sidecar files are not an option: directory
pools list every file, hidden ones too, as volumes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import json
import os
import socket

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import uri_is_local

XATTR = "user.virtops"
VERSION = 1
MAX_BYTES = 2048
_SOURCE_SHOWN = 300
# errors that mean "no record can be kept here", not "something is wrong"
_NO_XATTR_NAMES = ("ENODATA", "ENOATTR", "ENOTSUP", "EOPNOTSUPP", "ENOENT", "EPERM", "EACCES", "EROFS", "ENOSPC", "E2BIG")
_NO_XATTR = tuple(getattr(errno, n) for n in _NO_XATTR_NAMES if hasattr(errno, n))


def redact_source(source):
    """``source`` as recorded: an URL without user, password, query and fragment (signed URLs change
    their query on every download; credentials do not belong in a file's attributes); a path as is."""
    if source is None:
        return None
    text = str(source)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    rest = rest.split("#", 1)[0].split("?", 1)[0]
    host, slash, path = rest.partition("/")
    host = host.rpartition("@")[2]
    return "%s://%s%s%s" % (scheme.lower(), host.lower(), slash, path)


def source_id(source):
    redacted = redact_source(source)
    return hashlib.sha256(redacted.encode("utf-8")).hexdigest() if redacted is not None else None


def _boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def _start_time(pid):
    """The start time of process ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        with open("/proc/%d/stat" % int(pid)) as handle:
            text = handle.read()
    except (IOError, OSError, ValueError):
        return None
    fields = text.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def filler():
    """Who is filling a volume now: this process."""
    pid = os.getpid()
    return dict(host=socket.gethostname(), boot=_boot_id(), pid=pid, start=_start_time(pid))


def filler_state(record):
    """``"alive"`` (the process that fills the volume still runs), ``"dead"`` (it died, or the host
    rebooted since) or ``"elsewhere"`` (it runs or ran on another host: a pool on shared storage)."""
    who = (record or {}).get("filler") or {}
    if who.get("host") != socket.gethostname():
        return "elsewhere"
    if who.get("boot") != _boot_id():
        return "dead"
    start = _start_time(who.get("pid") or 0)
    return "alive" if start is not None and start == who.get("start") else "dead"


def new_record(fmt, made_by, backing_format=None, source=None, checksum=None, complete=True):
    """A record for a volume this run makes; ``source`` and ``complete=False`` for one it fills."""
    rec = dict(v=VERSION, format=fmt, made_by=made_by, backing_format=backing_format)
    if source is not None:
        redacted = redact_source(source)
        shown = redacted if len(redacted) <= _SOURCE_SHOWN else redacted[:_SOURCE_SHOWN] + "..."
        rec.update(source=shown, source_sha256=source_id(source), checksum=checksum)
    rec.update(complete=complete, filler=None if complete else filler())
    return rec


def read_record(path):
    """The record of the file ``path`` (a dict), or None when it has none or it cannot be read."""
    if not path or not hasattr(os, "getxattr"):
        return None
    try:
        raw = os.getxattr(path, XATTR)
    except (IOError, OSError):
        return None
    try:
        rec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("v") != VERSION or not isinstance(rec.get("format"), str):
        return None
    return rec


def write_record(path, rec):
    """Store ``rec`` on the file ``path``; False when the file system keeps no user xattrs there."""
    if not path or not hasattr(os, "setxattr"):
        return False
    data = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(data) > MAX_BYTES:
        raise ValueError("a volume record must stay under %d bytes" % MAX_BYTES)
    try:
        os.setxattr(path, XATTR, data)
    except (IOError, OSError) as exc:
        if exc.errno in _NO_XATTR:
            return False
        raise
    return True


def _mtime_ns(text):
    """libvirt's ``<mtime>`` ('1796616795.735243912') in nanoseconds, or None."""
    if not text:
        return None
    sec, _dot, frac = text.strip().partition(".")
    try:
        return int(sec) * 1000000000 + int((frac + "000000000")[:9])
    except ValueError:
        return None


def local_file(uri, model):
    """The path of the volume ``model`` (``volume_view.parse_volume_xml``) when this node sees that very
    file, else None: a local URI, a regular file, and libvirt's modification time and size of it
    equal to what this node sees at that path (another mount namespace may hold a namesake)."""
    path = model.get("path")
    if not path or not uri_is_local(uri) or model.get("type") not in (None, "file"):
        return None
    try:
        st = os.stat(path)
    except (IOError, OSError):
        return None
    if not os.path.isfile(path):
        return None
    mtime = _mtime_ns(model.get("mtime"))
    if mtime is not None and st.st_mtime_ns != mtime:
        return None
    if model.get("physical") is not None and st.st_size != model["physical"]:
        return None
    return path


def local_path(uri, path):
    """``path`` when it is a regular file this node sees through a local URI, else None (a disk given by path)."""
    if path and uri_is_local(uri) and os.path.isfile(path):
        return path
    return None
