# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""OVF 1.0 (DMTF DSP0243): the vocabulary the descriptor's writer (:mod:`._export.ovf`) and reader
(:mod:`._import.ovf`) share, and OVA manifests (``.mf``): :func:`manifest` and :func:`parse_manifest`."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError

OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1"
OVF2_NS = "http://schemas.dmtf.org/ovf/envelope/2"
RASD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
VMW_NS = "http://www.vmware.com/schema/ovf"
VIRTOPS_NS = _xml.VIRTOPS_NS

NSMAP = {None: OVF_NS, "ovf": OVF_NS, "rasd": RASD_NS, "vssd": VSSD_NS, "xsi": XSI_NS, "vmw": VMW_NS,
         "virtops": VIRTOPS_NS}

BUSES = ("virtio", "sata", "scsi", "ide")

# CIM resource types (DSP1041 / CIM_ResourceAllocationSettingData)
RT_OTHER, RT_CPU, RT_MEMORY, RT_IDE, RT_SCSI, RT_NIC = 1, 3, 4, 5, 6, 10
RT_CDROM, RT_DVD, RT_DISK, RT_SATA = 15, 16, 17, 20

_ANY_SHA_RE = re.compile(r"^(SHA1|SHA256|SHA512)\s*\(([^)]+)\)\s*=\s*([0-9a-fA-F]+)$")
#: a file name an OVA may list: no directories, no control characters
SAFE_FILE_RE = re.compile(r"^[^/\\\x00-\x1f]+$")


def qname(ns, tag):
    return "{%s}%s" % (ns, tag)


# --- manifests ----------------------------------------------------------------------------------


def manifest(files):
    """An OVA manifest: one ``SHA256(name)= hex`` line per file, in the given order (dict order)."""
    lines = []
    for name, digest in files.items():
        if not SAFE_FILE_RE.match(name) or not re.match(r"^[0-9a-fA-F]{64}$", digest or ""):
            raise InvalidInputError("manifest: bad entry %r = %r" % (name, digest))
        lines.append("SHA256(%s)= %s\n" % (name, digest.lower()))
    return "".join(lines).encode("utf-8")


def parse_manifest(data):
    """An OVA manifest (``.mf``) -> {name: sha256 hex}.

    SHA1 and SHA512 lines (older VMware/VirtualBox exports) are returned as ``"sha1:hex"`` /
    ``"sha512:hex"`` so callers can still verify them; SHA256 digests are plain lowercase hex.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInputError("manifest: not UTF-8 text")
    out = {}
    for number, line in enumerate(data.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        match = _ANY_SHA_RE.match(line)
        if not match:
            raise InvalidInputError("manifest line %d is not 'SHA256(name)= hex': %r" % (number, line[:80]))
        algo, name, digest = match.group(1).upper(), match.group(2).strip(), match.group(3).lower()
        width = {"SHA1": 40, "SHA256": 64, "SHA512": 128}[algo]
        if len(digest) != width:
            raise InvalidInputError("manifest line %d: a %s digest has %d hex digits, not %d" % (number, algo, width, len(digest)))
        if name in out:
            raise InvalidInputError("manifest lists %r twice" % name)
        out[name] = digest if algo == "SHA256" else "%s:%s" % (algo.lower(), digest)
    return out
