# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's own VM archive (tar, tar.gz, tar.zst): its layout, formats and manifest.

Layout of an archive ``export`` writes and ``vm_import`` reads, members in this order, all regular
files with relative names:

1. ``virtops-export.json``: the manifest (:func:`build_manifest` / :func:`load_manifest`);
2. ``domain.xml``: the VM's persistent definition without secrets;
3. ``disks/<target>.<format>``: one per disk, in manifest order.

Reading archives (safely, as a stream) is :mod:`._tools.archive_read`; writing them is ``export``'s
(:mod:`._export.writers`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core.binaries import find_binary
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError

MANIFEST_NAME = "virtops-export.json"
DOMAIN_XML_NAME = "domain.xml"
DISKS_DIR = "disks"
FORMAT_VERSION = 1
GENERATOR = "virtops.libvirt"
ARCHIVE_FORMATS = ("tar", "tar.gz", "tar.zst")
#: where (de)compressors are looked for after PATH
TOOL_DIRS = ("/usr/bin", "/usr/local/bin", "/bin")

#: image formats a disk member may have (what qemu-img reads and ``export`` writes)
DISK_FORMATS = ("qcow2", "raw", "vmdk", "vdi", "vhdx", "vpc")
#: the most a metadata member (manifest, domain XML, OVF descriptor) may hold
MAX_METADATA_BYTES = 16 * 1024 * 1024
CHUNK = 1024 * 1024
#: granularity of holes in sparse copies
SPARSE_BLOCK = 64 * 1024

_TARGET_RE = re.compile(r"^(vd|sd|hd|xvd)[a-z]{1,3}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def disk_member_name(target, fmt):
    """``disks/vda.qcow2``: the member name of the disk at ``target`` in format ``fmt``."""
    return "%s/%s.%s" % (DISKS_DIR, target, fmt)


def archive_format_for_path(path):
    """The archive format a destination name asks for (``.tar``, ``.tar.gz``/``.tgz``, ``.tar.zst``), or None."""
    low = path.lower()
    for suffix, fmt in ((".tar.zst", "tar.zst"), (".tzst", "tar.zst"), (".tar.gz", "tar.gz"), (".tgz", "tar.gz"),
                        (".tar", "tar")):
        if low.endswith(suffix):
            return fmt
    return None


def detect_format(path):
    """``tar``, ``tar.gz`` or ``tar.zst`` from the file's first bytes (not its name)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except (IOError, OSError) as exc:
        raise InvalidInputError("cannot read %s: %s" % (path, exc))
    if head[:2] == _GZIP_MAGIC:
        return "tar.gz"
    if head[:4] == _ZSTD_MAGIC:
        return "tar.zst"
    if len(head) == 512 and head[257:262] == b"ustar":
        return "tar"
    raise InvalidInputError("%s is not a tar archive (plain, gzip or zstd compressed)" % path)


# --- the manifest ------------------------------------------------------------------------------


def build_manifest(vm, disks, created=None):
    """The manifest member as bytes.  ``vm``: name, uuid, vcpus, memory_mib, firmware, arch;
    ``disks``: dicts target, format, virtual_size, size, sha256, bus, device (``file`` is derived)."""
    entries = []
    for disk in disks:
        entry = dict(disk)
        entry.setdefault("device", "disk")
        entry["file"] = disk_member_name(disk["target"], disk["format"])
        entries.append(entry)
    data = {
        "format_version": FORMAT_VERSION,
        "generator": GENERATOR,
        "created": created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "vm": dict(vm),
        "domain_xml": DOMAIN_XML_NAME,
        "disks": entries,
    }
    load_manifest(json.dumps(data).encode("utf-8"))  # what we write, we can read
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _need(cond, msg):
    if not cond:
        raise InvalidInputError("archive manifest %s: %s" % (MANIFEST_NAME, msg))


def _whole(value, what, minimum=0):
    _need(isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
          "%s must be a whole number >= %d, not %r" % (what, minimum, value))
    return value


def load_manifest(data):
    """Parse and check the manifest (bytes); returns the dict.  Everything later relies on these checks:
    disk files are ``disks/<target>.<format>``, sizes are whole numbers, digests are SHA-256 hex."""
    try:
        manifest = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError("archive manifest %s is not valid JSON: %s" % (MANIFEST_NAME, exc))
    _need(isinstance(manifest, dict), "must be a JSON object")
    version = manifest.get("format_version")
    _need(isinstance(version, int), "format_version is missing")
    if version > FORMAT_VERSION:
        raise InvalidInputError("archive format version %d is newer than this collection reads (%d): update virtops.libvirt"
                                % (version, FORMAT_VERSION))
    _need(version >= 1, "format_version %r is not valid" % version)
    vm = manifest.get("vm")
    _need(isinstance(vm, dict) and isinstance(vm.get("name"), str) and vm["name"], "vm.name is missing")
    _need(manifest.get("domain_xml") == DOMAIN_XML_NAME, "domain_xml must be %r" % DOMAIN_XML_NAME)
    disks = manifest.get("disks")
    _need(isinstance(disks, list), "disks must be a list")
    targets, files = set(), set()
    for index, disk in enumerate(disks):
        what = "disks[%d]" % index
        _need(isinstance(disk, dict), "%s must be an object" % what)
        target, fmt = disk.get("target"), disk.get("format")
        _need(isinstance(target, str) and _TARGET_RE.match(target), "%s.target %r is not a disk target (vda, sdb...)" % (what, target))
        _need(fmt in DISK_FORMATS, "%s.format must be one of %s, not %r" % (what, ", ".join(DISK_FORMATS), fmt))
        _need(disk.get("file") == disk_member_name(target, fmt), "%s.file must be %r, not %r"
              % (what, disk_member_name(target, fmt), disk.get("file")))
        _whole(disk.get("virtual_size"), "%s.virtual_size" % what, 1)
        _whole(disk.get("size"), "%s.size" % what)
        _need(isinstance(disk.get("sha256"), str) and _HEX64_RE.match(disk["sha256"]),
              "%s.sha256 must be 64 lowercase hex digits" % what)
        _need(disk.get("device", "disk") == "disk", "%s.device must be 'disk'" % what)
        _need(target not in targets, "target %s is listed twice" % target)
        targets.add(target)
        files.add(disk["file"])
    return manifest


def find_tool(name):
    """Path of a (de)compressor (``zstd``, ``pigz``) or None: PATH, then the usual bin directories."""
    return find_binary(name, extra_dirs=TOOL_DIRS)
