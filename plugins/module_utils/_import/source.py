# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``vm_import``: what is imported, read and checked before anything is extracted: the collection's own
archives (manifest and domain XML), OVAs and OVFs (the descriptor and its manifest), or bare disk images."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import tarfile

from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive as _archive
from ansible_collections.virtops.libvirt.plugins.module_utils._tools import archive_read as _archive_read

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import normalize as _normalize

from ansible_collections.virtops.libvirt.plugins.module_utils._import import ovf as _ovf_read
from ansible_collections.virtops.libvirt.plugins.module_utils._tools import ovf as _ovf_tools

from ansible_collections.virtops.libvirt.plugins.module_utils._storage import trust as _trust

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError, NotFoundError

KINDS = ("auto", "archive", "ova", "ovf")
TARGET_FORMATS = ("qcow2", "raw")
#: image formats accepted in a source (what qemu-img reads and the exporters of this world write)
IMAGE_FORMATS = ("qcow2", "raw", "vmdk", "vdi", "vhdx", "vpc")
_EXTENSION_FORMATS = {"vmdk": "vmdk", "qcow2": "qcow2", "vdi": "vdi", "vhdx": "vhdx", "vhd": "vpc", "img": "raw",
                      "raw": "raw"}
#: pool types whose volumes are files (qcow2 is possible); the others hold raw block devices
FILE_POOL_TYPES = ("dir", "fs", "netfs", "gluster", "vstorage")
MAX_MF_BYTES = 1024 * 1024
HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


def _ext_format(name):
    return _EXTENSION_FORMATS.get(name.rsplit(".", 1)[-1].lower()) if "." in name else None


def split_digest(value):
    """``'hex'`` (SHA-256) or ``'sha1:hex'`` -> (algorithm, hex)."""
    if value is None:
        return None, None
    if ":" in value:
        algo, digest = value.split(":", 1)
        return algo, digest
    return "sha256", value


def inspect_image(qemu_img, path, fmt, what):
    """The image-trust check (``_trust.check_image``, no backing file allowed) of one disk: returns
    (format, virtual size).  ``fmt`` None: the format is sniffed (only for files the user named)."""
    facts = _trust.check_image(qemu_img, path, fmt, what)
    if facts["format"] not in IMAGE_FORMATS:
        raise InvalidInputError("%s: image format %r is not accepted (%s)" % (what, facts["format"], ", ".join(IMAGE_FORMATS)))
    return facts["format"], facts["virtual_size"]


def assign_targets(disks):
    """Fill ``target`` (vda, sda, hda...) of disks that have none, by bus, after the ones given."""
    used = set(d["target"] for d in disks if d.get("target"))
    for disk in disks:
        if disk.get("target"):
            continue
        prefix = _domain.BUS_PREFIX.get(disk["bus"], "vd")
        index = 0
        while "%s%s" % (prefix, _normalize.target_letters(index)) in used:
            index += 1
        disk["target"] = "%s%s" % (prefix, _normalize.target_letters(index))
        used.add(disk["target"])
    return disks


class Source:
    """What an import reads: kind, VM name, disks and (by kind) domain XML or hardware."""

    def __init__(self, kind, path, fmt=None):
        self.kind = kind
        self.path = path
        self.format = fmt            # archive format (tar, tar.gz, tar.zst) for archive and ova
        self.name = None
        self.disks = []              # dicts: target, bus, member/path, format, virtual_size, size, digest
        self.domain_xml = None       # own archives
        self.hardware = None         # ova/ovf/disks: vcpus, memory_mib, firmware, os_hint, nics
        self.first = []              # (member name, bytes) read at planning time, compared when applying
        self.mf = None               # OVA/OVF manifest {name: digest}
        self.mf_name = None
        self.extra_members = set()   # OVA members that are read but not imported (.cert)
        self.notes = []

    def view(self):
        return dict(path=self.path, type=self.kind, format=self.format, name=self.name)


def _read_head(path, size=512):
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except (IOError, OSError) as exc:
        raise NotFoundError("src: cannot read %s: %s" % (path, exc))


def load_source(path, kind="auto"):
    """Read the metadata of the source at ``path`` (manifest + domain XML, or the OVF); nothing is
    extracted.  Uncompressed tar archives are scanned whole (headers only) here already."""
    if not os.path.isabs(path):
        raise InvalidInputError("src: %r must be an absolute path" % path)
    if os.path.isdir(path):
        raise InvalidInputError("src: %s is a directory; give the archive, the .ova or the .ovf file" % path)
    head = _read_head(path)
    if kind in ("auto", "ovf") and head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return _load_ovf(path)
    if kind == "ovf":
        raise InvalidInputError("src: %s is not an OVF descriptor (XML)" % path)
    fmt = _archive.detect_format(path)
    src = Source(None, path, fmt)
    with _archive_read.ArchiveStream(path, fmt) as stream:
        members = stream.members()
        try:
            name, size, fileobj = next(members)
        except StopIteration:
            raise InvalidInputError("src: %s is an empty archive" % path)
        if name == _archive.MANIFEST_NAME:
            src.kind = "archive"
            data = _archive_read.read_small(fileobj, size, name)
            src.first.append((name, data))
            manifest = _archive.load_manifest(data)
            try:
                name, size, fileobj = next(members)
            except StopIteration:
                name = None
            if name != _archive.DOMAIN_XML_NAME:
                raise InvalidInputError("archive %s: the second member must be %s, not %r" % (path, _archive.DOMAIN_XML_NAME, name))
            src.domain_xml = _archive_read.read_small(fileobj, size, name)
            src.first.append((name, src.domain_xml))
            _fill_from_manifest(src, manifest)
        elif name.lower().endswith(".ovf") and "/" not in name:
            src.kind = "ova"
            data = _archive_read.read_small(fileobj, size, name)
            src.first.append((name, data))
            _fill_from_ovf(src, _ovf_read.parse_ovf(data))
        else:
            raise InvalidInputError("src: %s is neither an archive of this collection (first member %s) nor an OVA "
                                    "(first member *.ovf); its first member is %r" % (path, _archive.MANIFEST_NAME, name))
    if kind not in ("auto", src.kind):
        raise InvalidInputError("src: %s is an %s, not an %s" % (path, "OVA" if src.kind == "ova" else "archive of this collection", kind))
    if fmt == "tar":
        _check_listing(src, _archive_read.scan(path))
    return src


def _fill_from_manifest(src, manifest):
    src.name = manifest["vm"]["name"]
    for disk in manifest["disks"]:
        src.disks.append(dict(target=disk["target"], bus=disk.get("bus"), member=disk["file"], path=None,
                              format=disk["format"], virtual_size=disk["virtual_size"], size=disk["size"],
                              digest=disk["sha256"]))


def _fill_from_ovf(src, vm):
    src.name = vm["name"]
    src.hardware = vm
    for index, disk in enumerate(vm["disks"]):
        if not disk.get("file"):
            raise InvalidInputError("OVF: disk %d has no file (an empty disk): this is not supported" % (index + 1))
        member = _archive_read.normal_name(disk["file"])
        src.disks.append(dict(target=None, bus=disk["bus"], member=member, path=None, format=_ext_format(member),
                              virtual_size=disk["capacity"], size=disk.get("size"), digest=None))
    assign_targets(src.disks)


def _check_listing(src, listing):
    """An uncompressed archive's whole member list against what its metadata declares."""
    sizes = dict(listing)
    expected = dict((d["member"], d) for d in src.disks)
    if src.kind == "archive":
        allowed = set([_archive.MANIFEST_NAME, _archive.DOMAIN_XML_NAME]) | set(expected)
    else:
        allowed = set([src.first[0][0]]) | set(expected)
        stem = src.first[0][0][:-4]
        for name, _size in listing:
            if name.lower().endswith(".mf") and "/" not in name:
                src.mf_name = name
            elif name.lower().endswith(".cert") and "/" not in name:
                src.extra_members.add(name)
        allowed |= src.extra_members
        if src.mf_name:
            allowed.add(src.mf_name)
        if src.mf_name and src.mf_name[:-3] != stem:
            src.notes.append("the OVA manifest %s is not named after its descriptor" % src.mf_name)
    unexpected = [name for name, _size in listing if name not in allowed]
    if unexpected:
        raise InvalidInputError("%s: unexpected member %r (the archive holds more than its %s declares)"
                                % (src.path, unexpected[0], "manifest" if src.kind == "archive" else "OVF descriptor"))
    for name, disk in expected.items():
        if name not in sizes:
            raise InvalidInputError("%s: member %r is missing" % (src.path, name))
        if disk["size"] is not None and sizes[name] != disk["size"]:
            raise InvalidInputError("%s: member %r is %d bytes, but the %s declares %d" % (
                src.path, name, sizes[name], "manifest" if src.kind == "archive" else "OVF descriptor", disk["size"]))
    if src.mf_name:
        with tarfile.open(src.path, "r:") as tar:
            info = [i for i in tar.getmembers() if _archive_read.normal_name(i.name) == src.mf_name][0]
            src.mf = _ovf_tools.parse_manifest(_archive_read.read_small(tar.extractfile(info), info.size, src.mf_name, MAX_MF_BYTES))
        _apply_mf(src)


def _apply_mf(src):
    """Digests of the OVA/OVF manifest onto the disks; every disk must be listed."""
    for disk in src.disks:
        key = disk["member"] if disk.get("member") else os.path.basename(disk["path"])
        if key not in src.mf:
            raise InvalidInputError("%s: the manifest %s does not list %s" % (src.path, src.mf_name, key))
        disk["digest"] = src.mf[key]


def _load_ovf(path):
    if os.path.getsize(path) > _archive.MAX_METADATA_BYTES:
        raise InvalidInputError("src: %s is too large for an OVF descriptor" % path)
    with open(path, "rb") as handle:
        data = handle.read()
    src = Source("ovf", path)
    vm = _ovf_read.parse_ovf(data)
    _fill_from_ovf(src, vm)
    base = os.path.realpath(os.path.dirname(path))
    for disk in src.disks:
        full = os.path.join(base, disk["member"])
        real = os.path.realpath(full)
        if not real.startswith(base + os.sep):
            raise InvalidInputError("OVF: file %r resolves to %s, outside the directory of the descriptor" % (disk["member"], real))
        if not os.path.isfile(real):
            raise NotFoundError("OVF: file %s does not exist" % full)
        if disk["size"] is not None and os.path.getsize(real) != disk["size"]:
            raise InvalidInputError("OVF: file %s is %d bytes, but the descriptor declares %d"
                                    % (full, os.path.getsize(real), disk["size"]))
        disk["path"] = real
    mf = os.path.splitext(path)[0] + ".mf"
    if os.path.isfile(mf):
        src.mf_name = mf
        with open(mf, "rb") as handle:
            src.mf = _ovf_tools.parse_manifest(handle.read(MAX_MF_BYTES + 1))
        _apply_mf(src)
        own = src.mf.get(os.path.basename(path))
        if own is not None:
            algo, digest = split_digest(own)
            if HASHES[algo](data).hexdigest() != digest:
                raise InvalidInputError("OVF: checksum mismatch for %s (manifest %s)" % (path, mf))
    else:
        src.notes.append("no manifest %s beside the OVF: the disk files are not checksum-verified" % mf)
    return src


def load_disks(items, qemu_img):
    """Bare disk images: each path checked and inspected now (qemu-img reads only the headers)."""
    if not items:
        raise InvalidInputError("disks: give at least one disk image")
    src = Source("disks", None)
    for index, item in enumerate(items):
        what = "disks[%d]" % index
        path = item.get("path")
        if not path or not os.path.isabs(path):
            raise InvalidInputError("%s.path must be an absolute path" % what)
        if not os.path.isfile(path):
            raise NotFoundError("%s.path: %s does not exist or is not a regular file" % (what, path))
        fmt, vsize = inspect_image(qemu_img, path, item.get("format"), "%s (%s)" % (what, path))
        bus = item.get("bus") or "virtio"
        if bus not in _domain.DISK_BUSES:
            raise InvalidInputError("%s.bus must be one of %s" % (what, ", ".join(_domain.DISK_BUSES)))
        target = item.get("target")
        if target is not None:
            _normalize.normalize(dict(disks=[dict(target=target)]))  # validates the name
        src.disks.append(dict(target=target, bus=bus, member=None, path=path, format=fmt, virtual_size=vsize,
                              size=None, digest=None, inspected=True))
    assign_targets(src.disks)
    targets = [d["target"] for d in src.disks]
    if len(set(targets)) != len(targets):
        raise InvalidInputError("disks: two disks use the same target")
    return src
