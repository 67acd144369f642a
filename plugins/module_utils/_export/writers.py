# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``export``: writing the files: tar archives (plain, gzip through pigz or Python, zstd), the
qemu-img convert command line, and the errors of a full destination."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import gzip
import hashlib
import os
import subprocess
import tarfile
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive as _archive

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, CommandError, InvalidInputError, MissingDependencyError
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.fs import sha256_file

CHUNK = 1024 * 1024
GZIP_LEVEL = 6
ZSTD_LEVEL = 3
#: ustar stores sizes in 11 octal digits
USTAR_MAX = 8 ** 11 - 1
#: qemu-img ``-o`` options per output format
_CREATE_OPTIONS = dict(vmdk={"subformat": "streamOptimized"}, vhdx={"subformat": "dynamic"})
_NO_SPACE_MARKERS = ("no space left on device", "disk quota exceeded")


class DestinationFullError(BackendError):
    """The destination file system filled up (ENOSPC/EDQUOT)."""

    kind = "no_space"


def is_no_space(text):
    low = (text or "").lower()
    return any(marker in low for marker in _NO_SPACE_MARKERS)


def free_bytes(directory):
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def write_bytes(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def export_argv(qemu, src, dst, out_fmt, src_fmt=None, compress=False, force_share=False):
    """``qemu-img convert`` with progress; ``force_share`` (-U) only for images that a running
    VM holds open but no longer writes (the frozen image under an overlay, read-only disks).
    Writes out of order (-W) except compressed images and streamOptimized VMDKs, written in order."""
    return qemu.convert_argv(src, dst, out_fmt, src_fmt, compress, options=_CREATE_OPTIONS.get(out_fmt),
                             threads=8, progress=True, force_share=force_share,
                             out_of_order=not compress and out_fmt != "vmdk")


class _HashingWriter:
    """A write-only file object that hashes, counts and forwards what it gets."""

    def __init__(self, raw):
        self.raw = raw
        self.hasher = hashlib.sha256()
        self.count = 0

    def write(self, data):
        self.hasher.update(data)
        self.count += len(data)
        view = memoryview(data)
        while view:
            written = self.raw.write(view)
            view = view[written:]
        return len(data)

    def flush(self):
        self.raw.flush()

    def tell(self):
        return self.count


class _CountingReader:
    def __init__(self, raw, on_bytes):
        self.raw = raw
        self.on_bytes = on_bytes

    def read(self, size=-1):
        data = self.raw.read(size)
        if data and self.on_bytes is not None:
            self.on_bytes(len(data))
        return data


def compressor_argv(fmt):
    """The external compressor for an archive format (None: Python does it, or nothing to do)."""
    if fmt == "tar.zst":
        binary = _archive.find_tool("zstd")
        if binary is None:
            raise MissingDependencyError("format tar.zst needs the zstd command on the managed node: install the "
                                         "'zstd' package")
        return [binary, "-T0", "-%d" % ZSTD_LEVEL, "-q", "-c", "--no-progress"]
    if fmt == "tar.gz":
        binary = _archive.find_tool("pigz")
        if binary is not None:
            return [binary, "-c", "-%d" % GZIP_LEVEL]
    return None


def _tarinfo(name, size, mtime, tar_format):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if tar_format == tarfile.USTAR_FORMAT and size > USTAR_MAX:
        raise InvalidInputError("member %s is %d bytes, more than a ustar archive can hold" % (name, size))
    return info


def write_tar(path, members, fmt, on_bytes=None, tar_format=tarfile.PAX_FORMAT):
    """Write the archive ``path``; ``members`` is ``[(name, bytes or file path)]`` in order.

    Returns the SHA-256 of the file written.  Disk full and compressor failures raise our errors.
    """
    argv = compressor_argv(fmt)
    mtime = time.time()
    proc = tar = gz = hashing = None
    out = open(path, "wb", buffering=0)
    try:
        try:
            if argv is not None:
                try:
                    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE)
                except OSError as exc:
                    raise BackendError("cannot start %s: %s" % (argv[0], exc))
                sink = proc.stdin
            else:
                hashing = _HashingWriter(out)
                sink = hashing
            if fmt == "tar.gz" and argv is None:
                gz = gzip.GzipFile(filename="", mode="wb", fileobj=sink, compresslevel=GZIP_LEVEL, mtime=0)
                sink = gz
            tar = tarfile.open(fileobj=sink, mode="w|", format=tar_format, bufsize=CHUNK, copybufsize=CHUNK)
            for name, content in members:
                if isinstance(content, bytes):
                    tar.addfile(_tarinfo(name, len(content), mtime, tar_format), _BytesReader(content))
                else:
                    info = _tarinfo(name, os.path.getsize(content), mtime, tar_format)
                    with open(content, "rb") as handle:
                        tar.addfile(info, _CountingReader(handle, on_bytes))
            tar.close()
            tar = None
            if gz is not None:
                gz.close()
                gz = None
            if proc is not None:
                proc.stdin.close()
        except (IOError, OSError) as exc:
            _abandon(tar, gz)
            tar = gz = None
            if proc is not None:
                _finish_compressor(proc, argv, path, exc)
            raise write_error(exc, path)
        if proc is not None:
            _finish_compressor(proc, argv, path, None)
        try:
            os.fsync(out.fileno())
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # devices and pipes cannot be synced
                raise write_error(exc, path)
    except BaseException:
        _abandon(tar, gz)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    finally:
        out.close()
    if hashing is not None:
        return hashing.hasher.hexdigest()
    return sha256_file(path)


def _abandon(tar, gz):
    """Forget a half-written tar stream and gzip file: closing them would only write into a failed file."""
    if tar is not None:
        tar.fileobj.closed = True  # the _Stream: its __del__ would try to flush
        tar.closed = True
    if gz is not None:
        gz.fileobj = None


class _BytesReader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def read(self, size=-1):
        if size is None or size < 0:
            size = len(self.data) - self.pos
        chunk = self.data[self.pos:self.pos + size]
        self.pos += len(chunk)
        return chunk


def _finish_compressor(proc, argv, path, write_exc):
    """Wait for the compressor; its failure (a full disk most often) becomes our error."""
    if write_exc is not None:
        try:
            proc.stdin.close()
        except (IOError, OSError):
            pass
    err = proc.stderr.read().decode("utf-8", "replace")
    proc.stderr.close()
    rc = proc.wait()
    if rc == 0 and write_exc is None:
        return
    text = " ".join(err.split())
    if is_no_space(text):
        raise DestinationFullError("the destination of %s is full: %s (%s)" % (path, text, os.path.basename(argv[0])),
                                   free_bytes=free_bytes(os.path.dirname(path)))
    if rc != 0:
        tool = os.path.basename(argv[0])
        raise CommandError("%s failed (rc=%s) while writing %s: %s" % (tool, rc, path, text or "no output"),
                           argv, rc, "", err)


def write_error(exc, path):
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return DestinationFullError("the destination of %s is full: %s" % (path, exc.strerror),
                                    free_bytes=free_bytes(os.path.dirname(path)))
    return BackendError("writing %s failed: %s" % (path, exc))
