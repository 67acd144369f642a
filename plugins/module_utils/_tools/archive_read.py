# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Safe, streaming reading of tar archives (the collection's own, see :mod:`._tools.archive`, and OVAs).

Reading never trusts the archive: every member header is checked before its data is read
(:func:`check_member`: no absolute names, no ``..``, nothing but regular files, no duplicates),
data is copied with a hard limit on its length and hashed on the way (:func:`copy_member`), and
compressed archives are read as a stream (gzip in Python or through ``pigz``; zstd through the
``zstd`` binary, which Python's tarfile cannot do), so nothing is unpacked that is not asked for.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import zlib

from ansible_collections.virtops.libvirt.plugins.module_utils._tools.archive import (
    ARCHIVE_FORMATS,
    CHUNK,
    MAX_METADATA_BYTES,
    SPARSE_BLOCK,
    detect_format,
    find_tool,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    InvalidInputError,
    MissingDependencyError,
)


# --- member checks ------------------------------------------------------------------------------


def _kind(info):
    if info.issym():
        return "a symbolic link to %r" % info.linkname
    if info.islnk():
        return "a hard link to %r" % info.linkname
    if info.ischr() or info.isblk():
        return "a device file"
    if info.isfifo():
        return "a FIFO"
    if info.isdir():
        return "a directory"
    return "an entry of type %r" % info.type


def normal_name(name):
    """A member name made comparable (``./a//b`` -> ``a/b``); InvalidInputError if it is unsafe."""
    if not name or "\x00" in name or "\\" in name:
        raise InvalidInputError("member name %r is not a plain relative path" % (name,))
    if name.startswith("/"):
        raise InvalidInputError("member %r has an absolute path" % name)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInputError("member %r has a '..' component" % name)
    if not parts:
        raise InvalidInputError("member name %r is empty" % name)
    return "/".join(parts)


def check_member(info, allow_dirs=True):
    """Check one member header; returns its normalised name, or None for a directory to skip.

    Refuses (InvalidInputError) absolute names, ``..``, links of any kind, devices, FIFOs, sparse
    members and anything but regular files and (``allow_dirs``) directories.
    """
    name = normal_name(info.name)
    if info.isdir() and allow_dirs:
        return None
    if info.issym() or info.islnk() or not info.isreg():
        raise InvalidInputError("member %r is %s: only regular files are accepted" % (name, _kind(info)))
    if getattr(info, "sparse", None) or any(k.startswith("GNU.sparse") for k in (info.pax_headers or {})):
        raise InvalidInputError("member %r is a GNU sparse file, which is not accepted" % name)
    if info.size < 0:
        raise InvalidInputError("member %r has a negative size" % name)
    return name


def _new_member(info, seen):
    """:func:`check_member`, and refuse a name already ``seen`` (which it records); None for a directory."""
    name = check_member(info)
    if name is None:
        return None
    if name in seen:
        raise InvalidInputError("member %r is in the archive twice" % name)
    seen.add(name)
    return name


def scan(path):
    """Every member header of an uncompressed tar, checked, without reading the data (tar allows
    seeking over it): ``[(name, size), ...]`` in archive order; directories are left out."""
    found = []
    seen = set()
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                name = _new_member(info, seen)
                if name is not None:
                    found.append((name, info.size))
    except tarfile.TarError as exc:
        raise InvalidInputError("%s is not a readable tar archive: %s" % (path, exc))
    return found


# --- reading a stream ---------------------------------------------------------------------------


class ArchiveStream:
    """An archive opened for one pass: ``for name, size, fileobj in stream.members()``.

    Directories are skipped; every other member is checked with :func:`check_member` and for
    duplicates before it is yielded; ``fileobj`` must be read (or not) before the next member.
    Use as a context manager: the decompressor process is ended and waited for on exit.
    """

    def __init__(self, path, fmt=None):
        self.path = path
        self.format = fmt or detect_format(path)
        if self.format not in ARCHIVE_FORMATS:
            raise InvalidInputError("archive format must be one of %s, not %r" % (", ".join(ARCHIVE_FORMATS), self.format))
        self._proc = None
        self._file = None
        self._tar = None
        self._finished = False

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close(check=exc_info[0] is None and self._finished)

    def open(self):
        try:
            if self.format == "tar.zst":
                binary = find_tool("zstd")
                if binary is None:
                    raise MissingDependencyError("reading %s needs the zstd command: install the 'zstd' package" % self.path)
                self._spawn([binary, "-d", "-c", "-q", "--no-progress", "--", self.path])
                mode = "r|"
            elif self.format == "tar.gz" and find_tool("pigz"):
                self._spawn([find_tool("pigz"), "-d", "-c", "--", self.path])
                mode = "r|"
            else:
                self._file = open(self.path, "rb")
                mode = "r|gz" if self.format == "tar.gz" else "r|"
            fileobj = self._proc.stdout if self._proc is not None else self._file
            self._tar = tarfile.open(fileobj=fileobj, mode=mode, bufsize=CHUNK)
        except (IOError, OSError) as exc:
            self.close(check=False)
            raise InvalidInputError("cannot read %s: %s" % (self.path, exc))
        except tarfile.TarError as exc:
            self.close(check=False)
            raise InvalidInputError("%s is not a readable %s archive: %s" % (self.path, self.format, exc))

    def _spawn(self, argv):
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise BackendError("cannot start %s: %s" % (argv[0], exc))

    def members(self):
        seen = set()
        while True:
            try:
                info = self._tar.next()
            except tarfile.TarError as exc:
                raise InvalidInputError("%s is damaged or truncated: %s%s" % (self.path, exc, self._stderr_hint()))
            except (IOError, OSError, EOFError) as exc:
                raise InvalidInputError("%s cannot be read to the end: %s%s" % (self.path, exc, self._stderr_hint()))
            if info is None:
                self._finished = True
                return
            name = _new_member(info, seen)
            if name is None:
                continue
            yield name, info.size, self._tar.extractfile(info)

    def _stderr_hint(self):
        if self._proc is None:
            return ""
        try:
            self._proc.kill()
            err = self._proc.stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            err = ""
        err = " ".join(err.split())
        return " (%s)" % err if err else ""

    def close(self, check=False):
        """Close everything; with ``check`` a decompressor that failed raises InvalidInputError."""
        if self._tar is not None:
            try:
                self._tar.close()
            except (tarfile.TarError, IOError, OSError):
                pass
            self._tar = None
        if self._file is not None:
            self._file.close()
            self._file = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if not check:
            try:
                proc.kill()
            except OSError:
                pass
        try:
            proc.stdout.read()  # let a decompressor that is still writing see the end
        except (OSError, ValueError):
            pass
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", "replace")
        proc.stderr.close()
        rc = proc.wait()
        if check and rc != 0:
            raise InvalidInputError("%s: decompression failed (rc=%s): %s" % (self.path, rc, " ".join(err.split()) or "no output"))


#: what reading a damaged member raises (tarfile, gzip, a decompressor that stopped)
READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, IOError, OSError)


def _read(fileobj, size, name):
    try:
        return fileobj.read(size)
    except READ_ERRORS as exc:
        raise InvalidInputError("member %r is truncated or damaged: %s" % (name, exc))


def read_small(fileobj, size, name, limit=MAX_METADATA_BYTES):
    """All bytes of a metadata member, refusing more than ``limit`` (or than its header said)."""
    if size > limit:
        raise InvalidInputError("member %r is %d bytes; at most %d are accepted for it" % (name, size, limit))
    data = _read(fileobj, size + 1, name)
    if len(data) != size:
        raise InvalidInputError("member %r holds %d bytes, not the %d its header says" % (name, len(data), size))
    return data


def copy_member(fileobj, dest, size, name, declared_size=None, hasher=None, sparse=False):
    """Copy a member's data into the new file ``dest`` (O_EXCL), never more than its declared size;
    on any failure ``dest`` is removed again.

    Returns the hex digest of ``hasher`` (SHA-256 unless given).  InvalidInputError when the member
    is larger than ``declared_size`` or holds fewer bytes than its header says.  With ``sparse``,
    blocks of zeros are not written (the file gets holes there), as for a raw disk image.
    """
    if declared_size is not None and size != declared_size:
        raise InvalidInputError("member %r is %d bytes, but the archive declares %d" % (name, size, declared_size))
    hasher = hasher or hashlib.sha256()
    done = 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            while done <= size:
                chunk = _read(fileobj, min(CHUNK, size + 1 - done), name)
                if not chunk:
                    break
                done += len(chunk)
                if done > size:
                    raise InvalidInputError("member %r holds more than the %d bytes declared for it" % (name, size))
                hasher.update(chunk)
                if sparse:
                    _write_sparse(out, chunk)
                else:
                    out.write(chunk)
            if sparse:
                out.truncate(min(done, size))
        if done != size:
            raise InvalidInputError("member %r is truncated: %d of %d bytes" % (name, done, size))
    except BaseException:
        os.unlink(dest)  # no partial file is left behind
        raise
    return hasher.hexdigest()


_ZERO_BLOCK = bytes(SPARSE_BLOCK)


def _write_sparse(out, chunk):
    for start in range(0, len(chunk), SPARSE_BLOCK):
        block = chunk[start:start + SPARSE_BLOCK]
        if block == _ZERO_BLOCK[:len(block)]:
            out.seek(len(block), os.SEEK_CUR)
        else:
            out.write(block)


@contextlib.contextmanager
def scratch_dir(parent=None, prefix=".virtops-import-"):
    """A private temporary directory (in ``parent``), removed with everything in it on exit."""
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
