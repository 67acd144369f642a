# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ISO 9660 images as cloud-init seeds use them: one root directory of small files, Joliet and Rock Ridge.

* :func:`read_iso`: a small ISO 9660 reader (Rock Ridge, Joliet or plain names), to read an existing
  image back whichever tool made it.
* :func:`choose_builder`: a builder (pycdlib, or the ``xorriso``/``genisoimage``/``mkisofs`` command),
  all with one interface ``build(files, app_id) -> bytes``; ``build_checked`` reads the image back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import os
import re
import shutil
import struct
import tempfile
import traceback

from ansible_collections.virtops.libvirt.plugins.module_utils._core.binaries import find_binary
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    BackendError,
    CommandError,
    InvalidInputError,
    MissingDependencyError,
)

PYCDLIB_IMPORT_ERROR = None
try:
    import pycdlib
except ImportError:  # pragma: no cover - depends on the managed node
    pycdlib = None
    PYCDLIB_IMPORT_ERROR = traceback.format_exc()

#: the volume id of the images built here: the filesystem label cloud-init's NoCloud datasource looks for
VOLUME_ID = "cidata"
#: ISO builders, in the order ``auto`` tries them
BUILDERS = ("pycdlib", "xorriso", "genisoimage", "mkisofs")


class IsoReadError(Exception):
    """The bytes are not an ISO 9660 image this reader understands."""


_SECTOR = 2048
_JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")


def _dir_entries(data, extent, size, block):
    """Directory records of one directory: dicts name (raw bytes), extent, size, flags, su (system use)."""
    start = extent * block
    end = start + size
    if size > 4 * 1024 * 1024 or end > len(data) or start < 0:
        raise IsoReadError("directory extent outside the image")
    pos = start
    while pos < end:
        length = data[pos]
        if length == 0:
            pos = (pos // _SECTOR + 1) * _SECTOR
            continue
        rec = data[pos:pos + length]
        if length < 34 or len(rec) < length:
            raise IsoReadError("truncated directory record")
        name_len = rec[32]
        if 33 + name_len > length:
            raise IsoReadError("bad directory record")
        su_start = 33 + name_len + (0 if name_len % 2 else 1)
        yield dict(name=rec[33:33 + name_len], extent=struct.unpack_from("<I", rec, 2)[0],
                   size=struct.unpack_from("<I", rec, 10)[0], flags=rec[25], su=rec[su_start:])
        pos += length


def _susp_entries(su):
    pos = 0
    while pos + 4 <= len(su):
        sig, length = su[pos:pos + 2], su[pos + 2]
        if length < 4 or pos + length > len(su):
            return
        yield sig, su[pos:pos + length]
        if sig == b"ST":
            return
        pos += length


def _rr_name(su):
    parts = [entry[5:] for sig, entry in _susp_entries(su) if sig == b"NM" and len(entry) >= 5 and not entry[4] & 0x06]
    return b"".join(parts).decode("utf-8", "replace") if parts else None


def _strip_version(name):
    return re.sub(r";\d*$", "", name)


def read_iso(data):
    """Read an ISO 9660 image (bytes): dict(volume_id, application_id, names, files={name: bytes}).

    Only the root directory is read (a seed has no subdirectories).  File names come from Rock Ridge
    when present (what Linux shows, so what cloud-init sees), else from Joliet, else the ISO 9660
    names (version and trailing dot removed, lower case); ``names`` says which.  Raises IsoReadError.
    """
    if len(data) < 17 * _SECTOR:
        raise IsoReadError("too small for an ISO 9660 image")
    pvd = joliet = None
    for index in range(16, 16 + 32):
        desc = data[index * _SECTOR:(index + 1) * _SECTOR]
        if len(desc) < _SECTOR or desc[1:6] != b"CD001":
            raise IsoReadError("no ISO 9660 volume descriptor set")
        if desc[0] == 255:
            break
        if desc[0] == 1 and pvd is None:
            pvd = desc
        elif desc[0] == 2 and desc[88:91] in _JOLIET_ESCAPES and joliet is None:
            joliet = desc
    if pvd is None:
        raise IsoReadError("no ISO 9660 primary volume descriptor")
    block = struct.unpack_from("<H", pvd, 128)[0]
    if block not in (512, 1024, 2048):
        raise IsoReadError("unsupported logical block size %d" % block)

    def root_of(desc):
        rec = desc[156:190]
        return struct.unpack_from("<I", rec, 2)[0], struct.unpack_from("<I", rec, 10)[0]

    entries = list(_dir_entries(data, *root_of(pvd), block=block))
    rock_ridge = bool(entries) and entries[0]["name"] == b"\x00" and entries[0]["su"][:2] == b"SP"
    names = "iso9660"
    if rock_ridge:
        names = "rockridge"
    elif joliet is not None:
        entries = list(_dir_entries(data, *root_of(joliet), block=block))
        names = "joliet"
    files = {}
    for entry in entries:
        if entry["name"] in (b"\x00", b"\x01") or entry["flags"] & 0x02:
            continue
        if entry["flags"] & 0x80:
            raise IsoReadError("multi-extent files are not supported")
        if names == "rockridge":
            name = _rr_name(entry["su"]) or _strip_version(entry["name"].decode("ascii", "replace")).rstrip(".").lower()
        elif names == "joliet":
            name = _strip_version(entry["name"].decode("utf-16-be", "replace"))
        else:
            name = _strip_version(entry["name"].decode("ascii", "replace")).rstrip(".").lower()
        start = entry["extent"] * block
        if start + entry["size"] > len(data):
            raise IsoReadError("file %r lies outside the image" % name)
        files[name] = bytes(data[start:start + entry["size"]])
    return dict(
        volume_id=pvd[40:72].decode("ascii", "replace").rstrip(" \x00"),
        application_id=pvd[574:702].decode("ascii", "replace").rstrip(" \x00"),
        names=names,
        files=files,
    )


def _iso9660_name(name):
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())[:30] + ".;1"


class IsoBuilder:
    """Builds a seed ISO from files.  ``build(files, app_id)`` returns the image bytes."""

    name = None

    def build(self, files, app_id):
        raise NotImplementedError

    def build_checked(self, files, app_id):
        """:meth:`build`, then read the image back: it must be a ``cidata`` seed with exactly ``files``."""
        image = self.build(files, app_id)
        try:
            back = read_iso(image)
        except IsoReadError as exc:
            raise BackendError("the ISO %s built cannot be read back: %s" % (self.name, exc))
        if back["volume_id"] != VOLUME_ID or back["files"] != files:
            raise BackendError("the ISO %s built does not hold the seed's files as given (volume id %r, files %s)"
                               % (self.name, back["volume_id"], sorted(back["files"])))
        return image


class PycdlibBuilder(IsoBuilder):
    """ISO 9660 level 3 with Joliet and Rock Ridge 1.09, written in memory by pycdlib."""

    name = "pycdlib"

    def build(self, files, app_id):
        if pycdlib is None:
            raise MissingDependencyError("the Python library pycdlib is not installed on the managed node",
                                         exception=PYCDLIB_IMPORT_ERROR)
        iso = pycdlib.PyCdlib()
        out = io.BytesIO()
        try:
            iso.new(interchange_level=3, sys_ident="LINUX", vol_ident=VOLUME_ID, app_ident_str=app_id,
                    joliet=3, rock_ridge="1.09")
        except pycdlib.pycdlibexception.PyCdlibException as exc:
            raise BackendError("pycdlib could not start the seed ISO: %s" % exc)
        try:
            for name, data in files.items():
                iso.add_fp(io.BytesIO(data), len(data), iso_path="/" + _iso9660_name(name), rr_name=name,
                           joliet_path="/" + name, file_mode=0o100444)
            iso.write_fp(out)
        except pycdlib.pycdlibexception.PyCdlibException as exc:
            raise BackendError("pycdlib could not build the seed ISO: %s" % exc)
        finally:
            iso.close()
        return out.getvalue()


class CommandBuilder(IsoBuilder):
    """``xorriso -as mkisofs``, ``genisoimage`` or ``mkisofs`` on a temporary directory (argv lists only)."""

    def __init__(self, name, binary, run_command):
        self.name = name
        self.binary = binary
        self.run_command = run_command

    def argv(self, output, source_dir, app_id):
        argv = [self.binary]
        if self.name == "xorriso":
            argv += ["-as", "mkisofs"]
        return argv + ["-quiet", "-output", output, "-volid", VOLUME_ID, "-appid", app_id, "-joliet",
                       "-rational-rock", "-input-charset", "utf-8", source_dir]

    def build(self, files, app_id):
        tmpdir = tempfile.mkdtemp(prefix="virtops-seed-")
        try:
            source = os.path.join(tmpdir, "root")
            os.mkdir(source)
            for name, data in files.items():
                with open(os.path.join(source, name), "wb") as handle:
                    handle.write(data)
            output = os.path.join(tmpdir, "seed.iso")
            argv = self.argv(output, source, app_id)
            rc, out, err = self.run_command(argv)
            if rc != 0:
                raise CommandError("%s failed to build the seed ISO (rc=%d): %s" % (self.name, rc, (err or out).strip()),
                                   argv, rc, out, err)
            with open(output, "rb") as handle:
                return handle.read()
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)


def choose_builder(preference="auto", run_command=None, which=find_binary):
    """The ISO builder to use: ``preference`` is ``auto`` or one of :data:`BUILDERS`.

    ``auto`` takes pycdlib when it can be imported, else the first of xorriso, genisoimage and mkisofs
    found by ``which(name)`` (default :func:`~.._core.binaries.find_binary`: PATH and the sbin
    directories).  Commands run through ``run_command(argv) -> (rc, stdout, stderr)``.
    MissingDependencyError names what to install when nothing fits.
    """
    preference = preference or "auto"
    if preference not in ("auto",) + BUILDERS:
        raise InvalidInputError("iso_builder must be auto or one of %s" % ", ".join(BUILDERS))
    if preference in ("auto", "pycdlib") and pycdlib is not None:
        return PycdlibBuilder()
    if preference == "pycdlib":
        raise MissingDependencyError("iso_builder=pycdlib, but the Python library pycdlib is not installed on the "
                                     "managed node: pip install pycdlib", exception=PYCDLIB_IMPORT_ERROR)
    for name in BUILDERS[1:] if preference == "auto" else (preference,):
        binary = which(name)
        if binary:
            if run_command is None:
                raise BackendError("building the seed with %s needs a command runner" % name)
            return CommandBuilder(name, binary, run_command)
    if preference != "auto":
        raise MissingDependencyError("iso_builder=%s, but the command %s is not installed on the managed node"
                                     % (preference, preference))
    raise MissingDependencyError(
        "building a cloud-init seed ISO needs the Python library pycdlib (pip install pycdlib) or one of the "
        "commands xorriso, genisoimage or mkisofs (Debian/Ubuntu: apt-get install xorriso; Fedora/RHEL: "
        "dnf install xorriso) on the managed node",
        exception=PYCDLIB_IMPORT_ERROR,
    )
