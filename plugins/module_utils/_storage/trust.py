# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The image-trust check: one place that decides whether a disk image may reach QEMU.

What is trusted and what is not:

* trusted: what an administrator writes in a playbook: paths, pool and volume names, declared
  formats, and the records this collection keeps of the volumes it made (``_record``);
* not trusted: the bytes of an image (a download, a file, an archive member, a volume a guest has
  written to).  An image header can name other files (backing files, qcow2 external data files,
  VMDK extents) that QEMU, running as a privileged user, then opens and reads or writes.

:func:`check_image` checks a file on this node; :func:`check_reported` checks a volume that is
only known through libvirt's report (remote URI, or a file this node cannot see).  Both refuse:

* formats outside :data:`KNOWN_FORMATS`; a content that differs from the declared format (a file
  declared raw whose first bytes are a qcow2/qed/vmdk/... header is refused: a later consumer that
  probes would read it as that format);
* encryption (LUKS, encrypted qcow2); qcow2 external data files; VMDK extents in other files;
* backing files, except where the caller allows them (``backing``): then each link must be named
  as a plain file (no ``json:`` or protocol names such as ``nbd:``/``http:``), with an explicit
  backing format, must be a volume of an active storage pool, and is checked in turn, link by
  link, under that format (at most :data:`MAX_CHAIN` links, no loops);
* a virtual size above :data:`MAX_VIRTUAL_SIZE` (16 TiB: the largest file ext4 holds with 4 KiB
  blocks, so a raw copy of a larger image cannot exist in the usual directory pool).

qemu-img always reads an image with an explicit ``-f``: the declared or recorded format, or, for a
file the user named without a format, the one :func:`sniff_format` finds in its first bytes (raw
when none).  qemu-img runs with resource limits (``QemuImg.info(limits=True)``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import CommandError, InvalidInputError

#: image formats accepted from elsewhere (what qemu-img reads and the exporters of this world write)
KNOWN_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vhdx", "vpc", "qed")
#: 16 TiB
MAX_VIRTUAL_SIZE = 16 * 1024 ** 4
#: links of a backing chain checked at most
MAX_CHAIN = 16

_HEAD_BYTES = 512
# (format, offset, magic): the headers qemu's own probes look for, and a few formats we refuse
_MAGICS = (
    ("qcow2", 0, b"QFI\xfb"),
    ("qed", 0, b"QED\x00"),
    ("vmdk", 0, b"KDMV"),
    ("vmdk", 0, b"COWD"),
    ("vdi", 0x40, b"\x7f\x10\xda\xbe"),
    ("vhdx", 0, b"vhdxfile"),
    ("vpc", 0, b"conectix"),
    ("luks", 0, b"LUKS\xba\xbe"),
    ("parallels", 0, b"WithoutFreeSpace"),
    ("parallels", 0, b"WithouFreSpacExt"),
    ("bochs", 0, b"Bochs Virtual HD Image"),
    ("cloop", 0, b"#!/bin/sh\n#V2.0 Format\n"),
)
# "nbd:host:port", "http://...", "file:/path", "json:{...}": names qemu reads as a protocol, not a file
_PROTOCOL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# qemu's vmdk probe: after comment and blank lines, a text descriptor starts with "version=1|2|3"
_VMDK_TEXT_RE = re.compile(br"^(?:[ \t]*(?:#[^\n]*)?\r?\n)*[ \t]*version=[123]\r?\n")


def _one_line(text):
    return " ".join(str(text or "").split())


#: what an encrypted disk may be (disks[].encryption)
ONLY_LUKS = " (only LUKS-encrypted qcow2 images and raw LUKS images are)"


def sniff_format(path):
    """The format whose header ``path`` starts with (qcow2, qed, vmdk, vdi, vhdx, vpc, luks, ...) or
    None (raw: no known header).  Reads a few bytes itself; never runs qemu-img."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
            size = os.fstat(handle.fileno()).st_size
            tail = b""
            if size >= 1024:
                handle.seek(size - 512)
                tail = handle.read(512)
    except (IOError, OSError) as exc:
        raise InvalidInputError("cannot read %s: %s" % (path, exc.strerror or exc))
    for fmt, offset, magic in _MAGICS:
        if head[offset:offset + len(magic)] == magic:
            return "qcow" if fmt == "qcow2" and head[4:8] == b"\x00\x00\x00\x01" else fmt
    if _VMDK_TEXT_RE.match(head):
        return "vmdk"
    if tail[:8] == b"conectix":  # a fixed VHD keeps its footer at the end only
        return "vpc"
    return None


def _is_protocol_name(name):
    return name.startswith("json:") or bool(_PROTOCOL_RE.match(name))


def _refuse(what, reason):
    raise InvalidInputError("%s %s" % (what, reason))


def check_declared(what, declared, found, said="declared"):
    """Refuse when the content (``found``: a sniffed or reported format) is not what was ``said``."""
    if declared is None or found is None or found == declared:
        return
    if declared == "raw":
        _refuse(what, "is %s as raw, but its content is a %s image header: a raw disk that looks like an "
                      "image with its own metadata would be read as %s by anything that probes it; convert "
                      "it to raw first, or declare its real format" % (said, found, found))
    _refuse(what, "is %s as %s, but its content is a %s image" % (said, declared, found))


def _check_format_known(what, fmt):
    if fmt not in KNOWN_FORMATS:
        _refuse(what, "is a %s image: only %s images are accepted" % (fmt, ", ".join(KNOWN_FORMATS)))


def _check_size(what, size):
    if size is None or size <= 0:
        _refuse(what, "reports no valid virtual size")
    if size > MAX_VIRTUAL_SIZE:
        _refuse(what, "has a virtual size of %d bytes, more than the %d bytes (16 TiB) accepted"
                % (size, MAX_VIRTUAL_SIZE))


def _inspect(qemu_img, path, fmt, what):
    try:
        return qemu_img.info(path, fmt=fmt, limits=True)
    except CommandError as exc:
        _refuse(what, "cannot be read as %s: %s" % (fmt, _one_line(exc.stderr or exc.msg)))


def check_image(qemu_img, path, fmt=None, what=None, backing=None, said="declared", _depth=0, _seen=None, encrypted=False):
    """Check the image file ``path`` (see the module doc); return dict(format, virtual_size, chain).

    ``fmt``: the declared or recorded format; None only for a file the user named without one (its
    format is then sniffed, raw when no header is known).  ``backing``: None when no backing file is
    allowed, else ``backing(path)`` says whether a backing file at that (real) path is a volume of an
    active storage pool.  ``chain`` lists the backing links, nearest first, as dicts path, format.
    """
    what = what or path
    if not os.path.isfile(path):
        _refuse(what, "is not a regular file")
    sniffed = sniff_format(path)
    if encrypted and fmt == "raw":
        # a raw LUKS image given its secret (disks[].encryption): QEMU's luks driver opens it, the guest sees
        # the plaintext; read as raw here, nothing of its content but the LUKS header is looked at
        if sniffed != "luks":
            _refuse(what, "is %s as raw with encryption, but it is not a LUKS image (%s)" % (said, sniffed or "no header"))
    elif fmt is None:
        fmt = sniffed or "raw"
    else:
        check_declared(what, fmt, sniffed, said)
    _check_format_known(what, fmt)
    info = _inspect(qemu_img, path, fmt, what)
    specific = info.get("format-specific") or {}
    data = specific.get("data") or {}
    if info.get("encrypted") or fmt == "luks" or specific.get("type") == "luks" or data.get("encrypt"):
        # a VM disk given its LUKS secret (disks[].encryption): a LUKS-encrypted qcow2 image
        if not (encrypted and fmt == "qcow2" and (data.get("encrypt") or {}).get("format") == "luks"):
            _refuse(what, "is encrypted, which is not supported" + (ONLY_LUKS if encrypted else ""))
    if data.get("data-file"):
        _refuse(what, "keeps its data in another file (qcow2 external data file %s): only self-contained images "
                      "are accepted" % data["data-file"])
    real = os.path.realpath(path)
    base_dir = os.path.dirname(os.path.abspath(path))
    for extent in data.get("extents") or []:
        name = extent.get("filename")
        if name and os.path.realpath(os.path.join(base_dir, name)) != real:
            _refuse(what, "refers to another file (VMDK extent %s): only self-contained images are accepted" % name)
    try:
        size = int(info.get("virtual-size"))
    except (TypeError, ValueError):
        size = None
    _check_size(what, size)
    chain = []
    name = info.get("backing-filename") or info.get("full-backing-filename")
    if name:
        chain = _check_backing(qemu_img, path, what, name, info.get("backing-filename-format"), backing, base_dir,
                               _depth, (_seen or set()) | set([real]))
    return dict(format=fmt, virtual_size=size, chain=chain)


def _check_backing(qemu_img, path, what, name, fmt, backing, base_dir, depth, seen):
    if backing is None:
        _refuse(what, "has a backing file (%s): only self-contained images are accepted here" % name)
    if _is_protocol_name(name):
        _refuse(what, "names its backing file by a protocol or JSON (%s): only plain file names are accepted" % name)
    if not fmt:
        _refuse(what, "has a backing file (%s) without a backing format: its format would be probed from its "
                      "content" % name)
    target = os.path.normpath(name if os.path.isabs(name) else os.path.join(base_dir, name))
    if os.path.realpath(target) in seen:
        _refuse(what, "has a backing chain that loops (%s)" % name)
    if depth + 1 >= MAX_CHAIN:
        _refuse(what, "has a backing chain longer than %d images" % MAX_CHAIN)
    # the pool may name the file through a symbolic link of its directory, or by its real path
    if not (backing(target) or backing(os.path.realpath(target))):
        _refuse(what, "has a backing file outside the storage pools (%s): only volumes of active storage pools are "
                      "accepted as backing files" % name)
    link = check_image(qemu_img, target, fmt, what="%s: backing file %s" % (what, target), backing=backing,
                       said="named by its overlay", _depth=depth + 1, _seen=seen)
    return [dict(path=target, format=fmt)] + link["chain"]


def check_reported(model, fmt, what, backing=None, chain=None, said="declared", encrypted=False):
    """The same rules for a volume known only from libvirt's report (``volume_view.parse_volume_xml``): a remote
    hypervisor, or a file this node cannot see.  libvirt does not report qcow2 data files or VMDK extents,
    and fills in backing formats by probing: those cannot be checked here (documented in the modules).
    ``chain``: ``volume_view.backing_chain`` of the volume (links with path, format, pool, volume)."""
    reported = model.get("format")
    check_declared(what, fmt, reported, said)
    _check_format_known(what, fmt or reported)
    if model.get("encrypted") and not (encrypted and (fmt or reported) in ("qcow2", "raw")
                                       and (model.get("encryption") or {}).get("format") == "luks"):
        _refuse(what, "is encrypted, which is not supported" + (ONLY_LUKS if encrypted else ""))
    _check_size(what, model.get("capacity"))
    for link in chain or []:
        if backing is None:
            _refuse(what, "has a backing file (%s): only self-contained images are accepted here" % link["path"])
        if link.get("path") is None or _is_protocol_name(link["path"]) or link.get("volume") is None:
            _refuse(what, "has a backing file outside the storage pools (%s): only volumes of active storage "
                          "pools are accepted as backing files" % link.get("path"))
        _check_format_known("%s: backing file %s" % (what, link["path"]), link.get("format"))
    return dict(format=fmt or reported, virtual_size=model.get("capacity"), chain=list(chain or []))


def pool_member(conn):
    """``backing`` for the checks above: a path is allowed when it is a volume of a storage pool of ``conn``."""

    def member(path):
        try:
            return conn.storageVolLookupByPath(path) is not None
        except libvirt.libvirtError:
            return False

    return member


def trusted_volume(conn, uri, model, qemu_img, what, declared=None, chain=None, backing=True, encrypted=False):
    """The format to use a volume with, from the first of: ``declared`` (the user's), the collection's
    record, libvirt's report; checked by :func:`check_image` when this node sees the file, else by
    :func:`check_reported` (``chain()`` then gives libvirt's backing chain).  A volume recorded raw is
    used as raw without looking at its content (the guest's data).  Declaring another format than the
    recorded one is refused.  Returns dict(format, record, virtual_size, chain, checked: file|report|record).
    """
    if model.get("format") == "iso":
        model = dict(model, format="raw")  # libvirt's name for an ISO 9660 file, which QEMU reads as raw
    path = _record.local_file(uri, model)
    rec = _record.read_record(path) if path else None
    allowed = pool_member(conn) if backing else None
    if rec is not None:
        if declared is not None and declared != rec["format"]:
            _refuse(what, "is recorded as a %s volume (made by this collection); format %s would read it as "
                          "another format: leave format unset or give %s" % (rec["format"], declared, rec["format"]))
        if rec["format"] == "raw":
            return dict(format="raw", record=rec, virtual_size=model.get("capacity"), chain=[], checked="record")
        facts = check_image(qemu_img, path, rec["format"], what, backing=allowed, said="recorded", encrypted=encrypted)
        return dict(facts, record=rec, checked="file")
    if path is not None:
        said = "declared" if declared is not None else "reported by libvirt"
        # libvirt's probe and ours must agree (libvirt reports a VMDK descriptor as raw, for one)
        facts = check_image(qemu_img, path, declared or model.get("format"), what, backing=allowed, said=said,
                            encrypted=encrypted)
        return dict(facts, record=None, checked="file")
    facts = check_reported(model, declared, what, backing=allowed, chain=chain() if chain else None, encrypted=encrypted)
    return dict(facts, record=None, checked="report")
