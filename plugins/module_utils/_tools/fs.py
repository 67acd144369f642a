# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Files on the host, one way each: an atomic write, a temporary name beside a target, a checksum
that skips holes, fsync of a directory, a quiet removal.

Every file the collection writes goes through :func:`atomic_write` (or :func:`temp_path` and a
rename for data streamed in pieces): a reader never sees half a file, and a failure leaves no
temporary file behind.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import os
import tempfile

CHUNK = 1024 * 1024


def temp_path(path):
    """A new, empty, hidden file beside ``path`` (same directory, so a rename is atomic); its name."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    return tmp


def fsync_dir(directory):
    """Flush a directory's entries (a rename in it) to disk; filesystems that cannot are ignored."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_quietly(path):
    """Remove a file if it is there; other errors than "not there" are ignored too (cleanup paths)."""
    if not path:
        return
    try:
        os.unlink(path)
    except OSError:
        pass


def atomic_write(path, data, mode=0o600, make_dirs=False):
    """Write ``data`` (bytes, or str as UTF-8) to ``path`` atomically with permissions ``mode``.

    The data goes to a temporary file beside ``path``, is flushed to disk, gets ``mode``, is renamed
    over ``path`` and the directory is flushed.  On any failure the temporary file is removed and
    ``path`` is left as it was.  ``make_dirs``: create missing parent directories (mode 0755).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    if make_dirs and not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    fsync_dir(directory)


def sha256_file(path, on_bytes=None):
    """SHA-256 of a file.  Holes are hashed as zeros without being read (raw images are sparse).

    ``on_bytes(n)`` is called for the bytes read (progress); holes are not counted.
    """
    hasher = hashlib.sha256()
    if not hasattr(os, "SEEK_DATA"):  # pragma: no cover - not Linux
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                hasher.update(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
        return hasher.hexdigest()
    zeros = bytes(CHUNK)
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                data_at = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: only a hole is left
                    raise
                data_at = size
            while pos < data_at:  # a hole
                step = min(CHUNK, data_at - pos)
                hasher.update(zeros[:step] if step < CHUNK else zeros)
                pos += step
            if pos >= size:
                break
            hole_at = os.lseek(fd, pos, os.SEEK_HOLE)
            os.lseek(fd, pos, os.SEEK_SET)
            while pos < hole_at:
                chunk = os.read(fd, min(CHUNK, hole_at - pos))
                if not chunk:
                    raise IOError("%s shrank while its checksum was computed" % path)
                hasher.update(chunk)
                pos += len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
    finally:
        os.close(fd)
    return hasher.hexdigest()
