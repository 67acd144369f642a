# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``export``: the options, the formats, the names of the files an export writes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive as _archive

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.filemode import mode_text, parse_mode
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import validate_name as validate_volume_name

DISK_FORMATS = ("qcow2", "raw", "vmdk", "vdi", "vhdx")
PACKED_FORMATS = ("ova",) + _archive.ARCHIVE_FORMATS
FORMATS = DISK_FORMATS + PACKED_FORMATS

#: file name extension of each disk format
EXTENSIONS = dict(qcow2="qcow2", raw="raw", vmdk="vmdk", vdi="vdi", vhdx="vhdx")
#: formats whose output qemu-img can check
_CHECKABLE = ("qcow2", "vmdk", "vdi", "vhdx")
#: name extensions taken off a volume name to name its export
_IMAGE_SUFFIXES = (".qcow2", ".qcow", ".img", ".raw", ".vmdk", ".vdi", ".vhdx", ".vhd", ".qed")

TMP_MARK = ".virtops-tmp-"
OVERLAY_MARK = ".virtops-export-"
RECORD_SUFFIX = ".export.json"
CHECKSUM_SUFFIX = ".sha256"
RECORD_VERSION = 1
#: mode of every file an export writes, unless the user gives ``mode``
DEFAULT_MODE = 0o600

_SAFE_RE = re.compile(r"[^A-Za-z0-9._+-]")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def safe_file_name(text):
    """A file name made from a VM or volume name: ``/``, blanks and other odd characters become ``_``."""
    name = _SAFE_RE.sub("_", text or "")
    if name.startswith("."):
        name = "_" + name[1:]
    return name[:200] or "export"


def volume_stem(name):
    low = name.lower()
    for suffix in _IMAGE_SUFFIXES:
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def iso_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def file_stamp(path):
    """``[size, mtime_ns]`` of a file, or None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def check_params(params):
    """The options, checked and completed; InvalidInputError on bad combinations."""
    vm, volume, pool = params.get("vm"), params.get("volume"), params.get("pool")
    if bool(vm) == bool(volume):
        raise InvalidInputError("give exactly one source: vm, or volume with pool")
    if volume and not pool:
        raise InvalidInputError("volume needs pool")
    if vm and pool:
        raise InvalidInputError("pool goes with volume, not with vm")
    if volume:
        validate_volume_name(volume, "volume")
    else:
        _domain.validate_name(vm)
    fmt = params.get("format") or "qcow2"
    if fmt not in FORMATS:
        raise InvalidInputError("format must be one of %s, not %r" % (", ".join(FORMATS), fmt))
    if volume and fmt in PACKED_FORMATS:
        raise InvalidInputError("format %s packs a whole VM (definition and disks): export a vm, or a volume in "
                                "one of %s" % (fmt, ", ".join(DISK_FORMATS)))
    compressed = bool(params.get("compressed"))
    if compressed and fmt not in ("qcow2", "tar"):
        raise InvalidInputError("compressed applies to formats qcow2 and tar (vmdk is always compressed, tar.gz and "
                                "tar.zst compress the whole archive), not to %s" % fmt)
    dest = params.get("dest")
    if not dest or not os.path.isabs(dest):
        raise InvalidInputError("dest must be an absolute path, not %r" % (dest,))
    for key in ("overlay_dir", "tmp_dir"):
        value = params.get(key)
        if value is not None and (not os.path.isabs(value) or not os.path.isdir(value)):
            raise InvalidInputError("%s must be an existing directory given as an absolute path, not %r" % (key, value))
    return dict(
        kind="vm" if vm else "volume",
        name=vm or volume,
        pool=pool,
        format=fmt,
        compressed=compressed,
        dest=dest,
        force=bool(params.get("force")),
        quiesce=bool(params.get("quiesce")),
        verify=bool(params.get("verify")),
        overlay_dir=params.get("overlay_dir"),
        tmp_dir=params.get("tmp_dir"),
        progress_file=params.get("progress_file"),
        mode=_mode_param(params.get("mode")),
    )


def _mode_param(value):
    mode = parse_mode(value, "mode", maximum=0o777)
    if mode is None:
        return DEFAULT_MODE
    if mode & 0o111:
        raise InvalidInputError("mode %s gives execute permission, which exported files do not need" % mode_text(mode))
    return mode
