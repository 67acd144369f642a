# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How the VM model reads ``tpm``, ``filesystems``, ``pinning``, ``numa`` and ``hugepages`` from a domain
definition: what read-only code (``vm_info``, the inventory) needs of :mod:`.tuning` and :mod:`.shares`,
which hold the rest (parameters, XML writing, checks, live pins).  CPU sets are read as libvirt writes
them, in the canonical form (``0-1,3``) that :func:`.tuning.canonical_cpuset` gives the parameters.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import from_libvirt_units

MIB = 1024 * 1024


def format_page_size(number):
    """A page size in bytes -> ``'2MiB'``, ``'1GiB'``, ``'64KiB'``."""
    for unit, factor in (("GiB", 1024 * MIB), ("MiB", MIB), ("KiB", 1024)):
        if number % factor == 0:
            return "%d%s" % (number // factor, unit)
    raise InvalidInputError("hugepages: a page size is a whole number of KiB, not %d bytes" % number)


def read_tuning(root):
    """``pinning``, ``numa`` and ``hugepages`` of the parsed domain ``root``."""
    pins = sorted((dict(vcpu=int(node.get("vcpu")), cpuset=node.get("cpuset"))
                   for node in root.findall("cputune/vcpupin") if (node.get("vcpu") or "").isdigit()),
                  key=lambda pin: pin["vcpu"])
    emulator = _xml.find_attr(root, "cputune/emulatorpin", "cpuset")
    cells = []
    for cell in sorted(root.findall("cpu/numa/cell"), key=lambda c: int(c.get("id") or 0)):
        memory = from_libvirt_units(cell.get("memory") or "0", cell.get("unit") or "KiB") // MIB
        cells.append(dict(cpus=cell.get("cpus") or "", memory=memory))
    hugepages = "none"
    if root.find("memoryBacking/hugepages") is not None:
        page = root.find("memoryBacking/hugepages/page")
        hugepages = "default"
        if page is not None and page.get("size"):
            hugepages = format_page_size(from_libvirt_units(page.get("size"), page.get("unit") or "KiB"))
    return dict(pinning=dict(vcpus=pins, emulator=emulator or ""), numa=cells, hugepages=hugepages)


def read_shares(root):
    """``tpm`` and ``filesystems`` of the parsed domain ``root``."""
    node = root.find("devices/tpm")
    tpm = dict(model="none") if node is None else dict(model=node.get("model") or "tpm-tis",
                                                       version=_xml.find_attr(node, "backend", "version"))
    shares = []
    for fs in root.findall("devices/filesystem"):
        source = _xml.find_attr(fs, "source", "dir")
        target = _xml.find_attr(fs, "target", "dir")
        if source and target:
            shares.append(dict(source=source, target=target, readonly=fs.find("readonly") is not None))
    return dict(tpm=tpm, filesystems=sorted(shares, key=lambda share: share["target"]))
