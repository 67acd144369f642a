# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``export``: where the files go (directory, artefacts, record), the record of an earlier export,
and the temporary files an interrupted export left."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive as _archive

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._export.params import (
    CHECKSUM_SUFFIX,
    DISK_FORMATS,
    EXTENSIONS,
    RECORD_SUFFIX,
    TMP_MARK,
    file_stamp,
    pid_alive,
    safe_file_name,
    volume_stem,
)

_TMP_RE = re.compile(r"^\..*" + re.escape(TMP_MARK) + r"(\d+)(\..*)?$")


def plan_layout(opts, source):
    """Destination directory, the artefacts (name, kind, format, target) and the record's path."""
    fmt, dest = opts["format"], opts["dest"]
    multi = source["kind"] == "vm" and fmt in DISK_FORMATS
    is_dir = multi or dest.endswith("/") or os.path.isdir(dest)
    if is_dir:
        directory = os.path.normpath(dest)
        if os.path.lexists(directory) and not os.path.isdir(directory):
            raise InvalidInputError("dest %s is a file, but a VM exported as %s gives one file per disk plus its "
                                    "definition: dest must be a directory" % (dest, fmt))
        parent = os.path.dirname(directory)
        if not os.path.isdir(directory) and not os.path.isdir(parent):
            raise NotFoundError("dest: the parent directory %s does not exist" % parent)
    else:
        directory = os.path.dirname(os.path.normpath(dest))
        if not os.path.isdir(directory):
            raise NotFoundError("dest: the directory %s does not exist" % directory)
    if source["kind"] == "vm":
        base = safe_file_name(source["name"])
    else:
        base = safe_file_name(volume_stem(source["name"]))
    artefacts = []
    if multi:
        artefacts.append(dict(name="%s.xml" % base, kind="definition", format="xml", target=None))
        for disk in source["disks"]:
            artefacts.append(dict(name="%s-%s.%s" % (base, disk["target"], EXTENSIONS[fmt]), kind="disk", format=fmt,
                                  target=disk["target"]))
        record = os.path.join(directory, "%s.%s%s" % (base, EXTENSIONS[fmt], RECORD_SUFFIX))
    else:
        if is_dir:
            ext = EXTENSIONS.get(fmt, fmt)
            name = "%s.%s" % (base, ext)
        else:
            name = os.path.basename(os.path.normpath(dest))
        kind = "disk" if fmt in DISK_FORMATS else ("ova" if fmt == "ova" else "archive")
        target = source["disks"][0]["target"] if kind == "disk" else None
        artefacts.append(dict(name=name, kind=kind, format=fmt, target=target))
        record = os.path.join(directory, name + RECORD_SUFFIX)
    for art in artefacts:
        art["path"] = os.path.join(directory, art["name"])
        art["checksum_file"] = art["path"] + CHECKSUM_SUFFIX
        if os.path.isdir(art["path"]):
            raise InvalidInputError("dest: %s is a directory, not a file the export can write" % art["path"])
    return dict(directory=directory, create_dir=not os.path.isdir(directory), artefacts=artefacts, record=record)


def read_record(path):
    """The record of an earlier export, or None; an unreadable record is treated as none."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read(1024 * 1024).decode("utf-8"))
    except (IOError, OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("generator") != _archive.GENERATOR or not isinstance(data.get("artefacts"), list):
        return None
    return data


def plain_name(name):
    """True for a file name of the destination directory itself (what a record may list)."""
    return isinstance(name, str) and bool(name) and name not in (".", "..") and "/" not in name and "\x00" not in name


def artefacts_intact(record, directory):
    """True when every artefact of ``record`` and its checksum file are still as written."""
    for art in record.get("artefacts") or []:
        if not isinstance(art, dict) or not plain_name(art.get("name")):
            return False
        path = os.path.join(directory, art["name"])
        if file_stamp(path) != [art.get("size"), art.get("mtime_ns")]:
            return False
        if not os.path.isfile(path + CHECKSUM_SUFFIX):
            return False
    return True


def stale_temporaries(directory):
    """Temporary files of exports whose process is gone, in ``directory``."""
    found = []
    try:
        names = os.listdir(directory)
    except OSError:
        return found
    for name in sorted(names):
        match = _TMP_RE.match(name)
        if match and not pid_alive(int(match.group(1))):
            found.append(os.path.join(directory, name))
    return found


def checksum_line(digest, name):
    """One ``sha256sum`` line: ``<hex>  <name>``."""
    return "%s  %s\n" % (digest, name)
