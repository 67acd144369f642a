# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Storage volumes, the writing side other resources share: the ``<volume>`` XML to create, the
capacity libvirt will report, creation races, deletion by name, the fill record, and uploads through
a libvirt stream.  A VM's disks, an import, a cloud-init seed and a migration create and fill their
volumes with these (and look them up with :mod:`.volume_view`); the ``volume`` resource does too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os

from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import lookup_volume

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_pool, retry_busy


# --- creating -----------------------------------------------------------------------------------


def build_volume_xml(name, capacity, fmt, allocation=None, backing_path=None, backing_format=None):
    """The ``<volume>`` element libvirt's ``vol-create`` takes."""
    root = _xml.element("volume")
    _xml.sub(root, "name", name)
    _xml.sub(root, "capacity", int(capacity), attrs={"unit": "bytes"})
    if allocation is not None:
        _xml.sub(root, "allocation", int(allocation), attrs={"unit": "bytes"})
    target = _xml.sub(root, "target")
    _xml.sub(target, "format", attrs={"type": fmt})
    if fmt == "qcow2":
        # libvirt 9.0 writes qcow2 version 2 (compat 0.10) unless told; version 3 holds the persistent
        # dirty bitmaps that incremental backups (checkpoints) need.
        _xml.sub(target, "compat", "1.1")
    if backing_path:
        backing = _xml.sub(root, "backingStore")
        _xml.sub(backing, "path", backing_path)
        if backing_format:
            _xml.sub(backing, "format", attrs={"type": backing_format})
    return root


def _round_up(value, step):
    return -(-int(value) // step) * step


def normal_capacity(capacity, fmt):
    """The capacity libvirt will report: qemu-img sizes qcow2 images in whole KiB."""
    if capacity is None:
        return None
    return _round_up(capacity, 1024) if fmt == "qcow2" else int(capacity)


def exists_already(exc):
    """Whether a failed volume creation (a translated error) says a volume of that name exists: another
    task created it since this one looked (libvirt's drivers say so with different codes)."""
    message = (exc.msg or "").lower()
    return (exc.details.get("libvirt_error_code") == flag("VIR_ERR_STORAGE_VOL_EXIST", 90)
            or "exists already" in message or "already exists" in message)


def delete_by_name(conn, pool_name, name):
    """Delete volume ``name`` of pool ``pool_name`` if it is there, looked up through ``conn`` (undo steps:
    the connection may be a new one)."""
    pool = find_pool(conn, pool_name)
    if pool is None:
        return
    vol = lookup_volume(pool, name)
    if vol is not None:
        retry_busy(lambda: vol.delete(0), "deleting volume %r" % name)


def record_fill(path, rec, complete):
    """Mark the record at ``path`` (None: none is kept) complete, or write it as it is."""
    if path:
        _record.write_record(path, dict(rec, complete=True, filler=None) if complete else rec)


# --- sparse upload through a libvirt stream -----------------------------------------------------


def _read_handler(_stream, nbytes, fd):
    return os.read(fd, nbytes)


def _skip_handler(_stream, length, fd):
    return os.lseek(fd, length, os.SEEK_CUR)


def _hole_handler(_stream, fd):
    """[in_data, length] of the section at the current offset (libvirt's sparse stream protocol)."""
    cur = os.lseek(fd, 0, os.SEEK_CUR)
    end = os.fstat(fd).st_size
    try:
        data = os.lseek(fd, cur, os.SEEK_DATA)
    except OSError:  # ENXIO: trailing hole or at EOF
        data = -1
    if data < 0:
        result = [False, end - cur]
    elif data > cur:
        result = [False, data - cur]
    else:
        hole = os.lseek(fd, data, os.SEEK_HOLE)
        result = [True, hole - data]
    os.lseek(fd, cur, os.SEEK_SET)
    return result


@contextlib.contextmanager
def volume_stream(conn, what):
    """A libvirt stream for one volume upload or download: finished when the block ends, aborted
    (and the error translated, ``what`` saying what was being done) when it fails."""
    with libvirt_errors(what):
        stream = conn.newStream(0)
        try:
            yield stream
            stream.finish()
        except Exception:
            try:
                stream.abort()
            except libvirt.libvirtError:
                pass
            raise


def upload_file(conn, vol, path, sparse):
    """Write the bytes of ``path`` into ``vol`` from offset 0 (sparse: skip holes; the volume is new)."""
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        with volume_stream(conn, "uploading %s into volume %r" % (path, vol.name())) as stream:
            if sparse:
                vol.upload(stream, 0, size, flag("VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM", 1))
                stream.sparseSendAll(_read_handler, _hole_handler, _skip_handler, fd)
            else:
                vol.upload(stream, 0, size, 0)
                stream.sendAll(_read_handler, fd)
    finally:
        os.close(fd)
