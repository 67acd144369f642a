# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""OVF descriptors read for ``vm_import`` (:func:`parse_ovf`, into the VM dict described in
:mod:`._export.ovf`): what ``export`` writes
(:mod:`._export.ovf`, ``parse_ovf(build_ovf(vm)) == vm``) and what VMware (``vmx-NN``) and VirtualBox
(``virtualbox-2.2``) write: capacities in programmatic units (``byte * 2^30``), controllers of any of
the usual kinds, CD-ROMs and other devices ignored, OVF 2.0 ``StorageItem``/``EthernetPortItem``.
A virtio disk written by ``export`` (marked ``virtops:bus="virtio"``) comes back as virtio; UEFI is
read the way VMware writes it (``vmw:Config firmware=efi``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.ovf import (
    BUSES,
    OVF2_NS,
    OVF_NS,
    RT_CPU,
    RT_DISK,
    RT_IDE,
    RT_MEMORY,
    RT_NIC,
    RT_SATA,
    RT_SCSI,
    VIRTOPS_NS,
    VMW_NS,
    qname,
)

_CONTROLLER_BUS = {RT_IDE: "ide", RT_SCSI: "scsi", RT_SATA: "sata"}
_NIC_IN = {"e1000": "e1000", "e1000e": "e1000e", "vmxnet3": "vmxnet3", "vmxnet2": "vmxnet3", "vmxnet": "vmxnet3",
           "pcnet32": "pcnet", "pcnet": "pcnet", "am79c970a": "pcnet", "am79c973": "pcnet", "virtio": "virtio",
           "virtio-net": "virtio", "virtionet": "virtio", "rtl8139": "rtl8139", "e1000g": "e1000"}
#: CIM OsType ids -> a hint, for OVFs with neither a description nor a VMware guest id
_CIM_OS_NAMES = {36: "linux", 79: "rhel", 80: "rhel", 82: "suse", 83: "suse", 93: "ubuntu", 94: "ubuntu",
                 95: "debian", 96: "debian", 97: "linux", 98: "linux", 99: "linux", 100: "linux", 101: "linux",
                 106: "centos", 107: "centos", 78: "freebsd", 42: "freebsd"}

_MIB = 1024 * 1024
_UNIT_WORDS = {"byte": 1, "bytes": 1, "kilobytes": 1024, "kb": 1024, "megabytes": _MIB, "mb": _MIB,
               "gigabytes": 1024 ** 3, "gb": 1024 ** 3, "terabytes": 1024 ** 4, "tb": 1024 ** 4}
_UNIT_RE = re.compile(r"^byte\s*(?:\*\s*(\d+)\s*\^\s*(-?\d+))?$")


# --- units --------------------------------------------------------------------------------------


def unit_factor(units, what="allocation units"):
    """Bytes per unit for ``byte``, ``byte * 2^30``, ``byte * 10^6``, ``MegaBytes``...  (DSP0004 annex C)."""
    if units is None or not units.strip():
        return 1
    text = " ".join(units.strip().split()).lower()
    if text in _UNIT_WORDS:
        return _UNIT_WORDS[text]
    match = _UNIT_RE.match(text)
    if match:
        if match.group(1) is None:
            return 1
        base, exp = int(match.group(1)), int(match.group(2))
        if base in (2, 10) and 0 <= exp <= 60:
            return base ** exp
    raise InvalidInputError("OVF: unsupported %s %r (expected e.g. 'byte', 'byte * 2^20', 'MegaBytes')" % (what, units))

# --- parse --------------------------------------------------------------------------------------


def _local(tag):
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else None


def _children(node, name):
    return [c for c in node if _local(c.tag) == name]


def _child(node, name):
    found = _children(node, name)
    return found[0] if found else None


def _text(node, name, default=None):
    found = _child(node, name)
    if found is None or found.text is None or not found.text.strip():
        return default
    return found.text.strip()


def _attr(node, name, default=None):
    """An attribute by local name, in the OVF namespace (1 or 2) or none (some writers omit the prefix)."""
    for key in (qname(OVF_NS, name), qname(OVF2_NS, name), name):
        if key in node.attrib:
            return node.get(key)
    return default


def _int(value, what):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidInputError("OVF: %s is not a whole number: %r" % (what, value))


def _find_system(root):
    systems = [n for n in root.iter() if _local(n.tag) == "VirtualSystem"]
    if not systems:
        raise InvalidInputError("OVF: the descriptor has no VirtualSystem")
    if len(systems) > 1:
        raise InvalidInputError("OVF: the descriptor holds %d virtual systems (a VirtualSystemCollection); "
                                "only single-VM OVFs can be imported" % len(systems))
    return systems[0]


def _os_hint(system):
    section = _child(system, "OperatingSystemSection")
    if section is None:
        return None
    description = _text(section, "Description")
    if description:
        return description
    vmw = section.get(qname(VMW_NS, "osType"))
    if vmw:
        return vmw
    cim = _attr(section, "id")
    try:
        return _CIM_OS_NAMES.get(int(cim)) if cim is not None else None
    except ValueError:
        return None


def _firmware(hw):
    for node in hw:
        if _local(node.tag) in ("Config", "ExtraConfig") and (node.get(qname(VMW_NS, "key")) or "").lower() == "firmware":
            return "uefi" if (node.get(qname(VMW_NS, "value")) or "").lower() == "efi" else "bios"
    return "bios"


def _items(hw):
    return [n for n in hw if _local(n.tag) in ("Item", "StorageItem", "EthernetPortItem")]


def _nic_model(subtype):
    if not subtype:
        return None
    return _NIC_IN.get(subtype.strip().lower(), subtype.strip().lower())


def parse_ovf(data):
    """An OVF descriptor (bytes or str) -> the VM dict (see :mod:`._export.ovf`).

    Raises InvalidInputError (malformed XML, no or several virtual systems, a disk whose file or
    capacity is missing, unsupported units).
    """
    root = _xml.parse(data, "OVF descriptor")
    if _local(root.tag) != "Envelope":
        raise InvalidInputError("OVF: the root element is <%s>, not <Envelope>" % _local(root.tag))
    files = {}
    refs = _child(root, "References")
    for node in _children(refs, "File") if refs is not None else []:
        href = _attr(node, "href")
        if not href:
            raise InvalidInputError("OVF: a References/File has no href")
        if _attr(node, "compression"):
            raise InvalidInputError("OVF: file %r is compressed (ovf:compression=%s), which is not supported"
                                    % (href, _attr(node, "compression")))
        if _attr(node, "chunkSize"):
            raise InvalidInputError("OVF: file %r is split into chunks, which is not supported" % href)
        size = _attr(node, "size")
        files[_attr(node, "id")] = dict(file=href, size=_int(size, "the size of %s" % href) if size is not None else None)

    disks_by_id = {}
    for section in [n for n in root.iter() if _local(n.tag) == "DiskSection"]:
        for node in _children(section, "Disk"):
            disk_id = _attr(node, "diskId")
            capacity = _attr(node, "capacity")
            if capacity is None:
                raise InvalidInputError("OVF: disk %r has no capacity" % disk_id)
            if capacity.strip().startswith("${"):
                raise InvalidInputError("OVF: disk %r has a capacity set by a property (%s), which is not supported"
                                        % (disk_id, capacity))
            factor = unit_factor(_attr(node, "capacityAllocationUnits"), "capacity units of disk %r" % disk_id)
            ref = _attr(node, "fileRef")
            if ref is not None and ref not in files:
                raise InvalidInputError("OVF: disk %r refers to file %r, which References does not list" % (disk_id, ref))
            entry = dict(files[ref]) if ref is not None else dict(file=None, size=None)
            entry["capacity"] = _int(capacity, "the capacity of disk %r" % disk_id) * factor
            disks_by_id[disk_id] = entry

    system = _find_system(root)
    name = _text(system, "Name") or _attr(system, "id")
    hw = _child(system, "VirtualHardwareSection")
    if hw is None:
        raise InvalidInputError("OVF: virtual system %r has no VirtualHardwareSection" % name)
    items = _items(hw)
    by_instance = dict((_text(i, "InstanceID"), i) for i in items)
    vm = dict(name=name, vcpus=None, memory_mib=None, firmware=_firmware(hw), os_hint=_os_hint(system),
              disks=[], nics=[])
    for item in items:
        rtype = _text(item, "ResourceType")
        rtype = _int(rtype, "an item's ResourceType") if rtype is not None else None
        if rtype == RT_CPU:
            vm["vcpus"] = _int(_text(item, "VirtualQuantity", 1), "the number of CPUs")
        elif rtype == RT_MEMORY:
            factor = unit_factor(_text(item, "AllocationUnits", "byte * 2^20"), "memory units")
            vm["memory_mib"] = _int(_text(item, "VirtualQuantity"), "the memory size") * factor // _MIB
        elif rtype == RT_DISK:
            vm["disks"].append(_disk(item, by_instance, disks_by_id))
        elif rtype == RT_NIC:
            vm["nics"].append(dict(network=_text(item, "Connection"), model=_nic_model(_text(item, "ResourceSubType"))))
    if not vm["vcpus"]:
        vm["vcpus"] = 1
    if not vm["memory_mib"]:
        raise InvalidInputError("OVF: virtual system %r has no memory item (ResourceType 4)" % name)
    return vm


def _disk(item, by_instance, disks_by_id):
    host = _text(item, "HostResource") or ""
    disk_id = None
    for prefix in ("ovf:/disk/", "/disk/"):
        if host.startswith(prefix):
            disk_id = host[len(prefix):]
    if disk_id is None:
        raise InvalidInputError("OVF: disk item %r does not point at a disk of the DiskSection (HostResource %r)"
                                % (_text(item, "ElementName"), host))
    if disk_id not in disks_by_id:
        raise InvalidInputError("OVF: disk item %r points at disk %r, which the DiskSection does not list"
                                % (_text(item, "ElementName"), disk_id))
    entry = dict(disks_by_id[disk_id])
    bus = item.get(qname(VIRTOPS_NS, "bus"))
    if bus not in BUSES:
        parent = by_instance.get(_text(item, "Parent"))
        ptype = _text(parent, "ResourceType") if parent is not None else None
        bus = _CONTROLLER_BUS.get(_int(ptype, "a controller's ResourceType") if ptype else None, "sata")
    return dict(file=entry["file"], size=entry["size"], capacity=entry["capacity"], bus=bus)
