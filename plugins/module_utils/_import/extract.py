# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``vm_import``: reading the disks out of an archive or OVA into the scratch directory (members in
the order and with the content seen when planning, sizes capped, digests checked) and verifying the
files of an OVF against its manifest."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive as _archive
from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive_read as _archive_read

from ansible_collections.virtops.libvirt.plugins.module_utils._tools import ovf as _ovf_tools

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._import.source import HASHES, MAX_MF_BYTES, split_digest


def extract(src, scratch):
    """Stream the disks of an archive or OVA into ``scratch``, checking every member against what was
    read at planning time, each disk's size and digest, and the OVA manifest (wherever it comes)."""
    by_member = dict((d["member"], d) for d in src.disks)
    first = dict(src.first)
    seen = set()
    late = []
    with _archive_read.ArchiveStream(src.path, src.format) as stream:
        for index, (name, size, fileobj) in enumerate(stream.members()):
            seen.add(name)
            if name in first:
                if index >= len(src.first) or src.first[index][0] != name:
                    raise InvalidInputError("%s: member %r is out of place" % (src.path, name))
                if _archive_read.read_small(fileobj, size, name) != first[name]:
                    raise InvalidInputError("%s changed while it was imported (member %r differs)" % (src.path, name))
            elif name in by_member:
                disk = by_member[name]
                algo, expected = split_digest(disk["digest"])
                hasher = HASHES[algo or "sha256"]()
                local = os.path.join(scratch, "disk-%s" % disk["target"])
                actual = _archive_read.copy_member(fileobj, local, size, name, declared_size=disk["size"],
                                                   hasher=hasher, sparse=True)
                disk["local"] = local
                disk["actual_digest"] = (algo or "sha256", actual)
                if expected is not None and actual != expected:
                    raise InvalidInputError("%s: checksum mismatch for member %r: the %s says %s:%s, the member has %s:%s"
                                            % (src.path, name, "manifest" if src.kind == "archive" else "OVA manifest",
                                               algo, expected, algo, actual))
            elif src.kind == "ova" and name.lower().endswith(".mf") and "/" not in name and src.mf is None:
                src.mf = _ovf_tools.parse_manifest(_archive_read.read_small(fileobj, size, name, MAX_MF_BYTES))
                src.mf_name = name
                done = [d for d in src.disks if "actual_digest" in d]
                for disk in src.disks:
                    if disk not in done:
                        _digest_from_mf(src, disk)
                late = done
            elif src.kind == "ova" and (name == src.mf_name or name in src.extra_members
                                        or (name.lower().endswith(".cert") and "/" not in name)):
                continue
            else:
                raise InvalidInputError("%s: unexpected member %r" % (src.path, name))
    missing = [d["member"] for d in src.disks if d["member"] not in seen]
    if missing:
        raise InvalidInputError("%s: member %r is missing" % (src.path, missing[0]))
    if late:
        _verify_late_mf(src, late)
    if src.kind == "ova" and src.mf is not None:
        own = src.mf.get(src.first[0][0])
        if own is not None:
            algo, digest = split_digest(own)
            if HASHES[algo](src.first[0][1]).hexdigest() != digest:
                raise InvalidInputError("%s: checksum mismatch for the OVF descriptor %s" % (src.path, src.first[0][0]))


def _digest_from_mf(src, disk):
    listed = src.mf.get(disk["member"])
    if listed is None:
        raise InvalidInputError("%s: the manifest %s does not list %s" % (src.path, src.mf_name, disk["member"]))
    disk["digest"] = listed


def _verify_late_mf(src, disks):
    """Disks read before the OVA manifest (which OVF puts before them): compare what was hashed."""
    for disk in disks:
        _digest_from_mf(src, disk)
        algo, digest = split_digest(disk["digest"])
        have_algo, have = disk["actual_digest"]
        if algo != have_algo:
            raise InvalidInputError("%s: the manifest %s comes after the disks and uses %s: it cannot be verified"
                                    % (src.path, src.mf_name, algo))
        if have != digest:
            raise InvalidInputError("%s: checksum mismatch for member %r (OVA manifest)" % (src.path, disk["member"]))


def verify_files(src):
    """The files beside an OVF against its manifest."""
    for disk in src.disks:
        disk["local"] = disk["path"]
        if disk["digest"] is None:
            continue
        algo, expected = split_digest(disk["digest"])
        hasher = HASHES[algo]()
        with open(disk["path"], "rb") as handle:
            for chunk in iter(lambda: handle.read(_archive.CHUNK), b""):
                hasher.update(chunk)
        if hasher.hexdigest() != expected:
            raise InvalidInputError("OVF: checksum mismatch for %s (manifest %s)" % (disk["path"], src.mf_name))
