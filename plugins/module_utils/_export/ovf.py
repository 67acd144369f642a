# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""OVF 1.0 descriptors (DMTF DSP0243) built for ``export`` (:func:`build_ovf`); :mod:`._import.ovf` reads
them, :mod:`._tools.ovf` holds what both share and the OVA manifests.

The VM is described by a plain dict, the same shape both ways::

    {"name": str, "vcpus": int, "memory_mib": int, "firmware": "bios"|"uefi", "os_hint": str|None,
     "disks": [{"file": "NAME-disk1.vmdk", "size": file_bytes, "capacity": virtual_bytes,
                "bus": "virtio"|"sata"|"scsi"|"ide"}],
     "nics": [{"network": "default", "model": "virtio"|"e1000"|...}]}

``parse_ovf(build_ovf(vm)) == vm``.  ``parse_ovf`` also reads what VMware (``vmx-NN``) and VirtualBox
(``virtualbox-2.2``) write: capacities in programmatic units (``byte * 2^30``), controllers of any of
the usual kinds, CD-ROMs and other devices ignored, OVF 2.0 ``StorageItem``/``EthernetPortItem``.

OVF has no standard way to say "virtio": a virtio disk is written on a SATA (AHCI) controller, which
VMware and VirtualBox understand, and marked ``virtops:bus="virtio"`` (an extension attribute other
readers ignore) so that it comes back as virtio.  UEFI is written the way VMware writes it
(``vmw:Config firmware=efi``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.ovf import (
    BUSES,
    NSMAP,
    OVF_NS,
    RASD_NS,
    RT_CPU,
    RT_DISK,
    RT_IDE,
    RT_MEMORY,
    RT_NIC,
    RT_SATA,
    RT_SCSI,
    SAFE_FILE_RE,
    VIRTOPS_NS,
    VMW_NS,
    VSSD_NS,
    qname,
)

#: what VMware and VirtualBox accept as the virtual hardware family
SYSTEM_TYPE = "vmx-10"
VMDK_STREAM_FORMAT = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
_FILE_FORMATS = {
    "vmdk": VMDK_STREAM_FORMAT,
    "qcow2": "http://www.gnome.org/~markmc/qcow-image-format.html",
    "vhd": "http://technet.microsoft.com/en-us/virtualization/bb676673.aspx",
    "vhdx": "http://technet.microsoft.com/en-us/virtualization/bb676673.aspx",
    "vdi": "http://www.virtualbox.org/manual/ch05.html#vdidetails",
    "img": "http://www.ietf.org/rfc/rfc1952.txt",
}

#: bus -> (ResourceType, ResourceSubType, element name) of the controller written for it
_CONTROLLERS = {
    "ide": (RT_IDE, "PIIX4", "IDE Controller"),
    "scsi": (RT_SCSI, "lsilogic", "SCSI Controller"),
    "sata": (RT_SATA, "AHCI", "SATA Controller"),
    "virtio": (RT_SATA, "AHCI", "SATA Controller"),
}

# NIC models: ours <-> the ResourceSubType spelling VMware/VirtualBox use
_NIC_OUT = {"e1000": "E1000", "e1000e": "E1000e", "vmxnet3": "VmxNet3", "pcnet": "PCNet32", "virtio": "virtio",
            "rtl8139": "rtl8139"}
# OS hints: the first matching prefix gives the CIM OsType id and VMware's guest id
_OS_TYPES = (
    ("ubuntu", 94, "ubuntu64Guest"),
    ("debian", 96, "debian10_64Guest"),
    ("rhel", 80, "rhel8_64Guest"),
    ("redhat", 80, "rhel8_64Guest"),
    ("centos", 107, "centos64Guest"),
    ("rocky", 80, "rhel8_64Guest"),
    ("alma", 80, "rhel8_64Guest"),
    ("fedora", 101, "fedora64Guest"),
    ("sles", 83, "sles15_64Guest"),
    ("opensuse", 83, "opensuse64Guest"),
    ("suse", 83, "sles15_64Guest"),
    ("freebsd", 78, "freebsd64Guest"),
    ("win", 1, "windows9_64Guest"),
    ("linux", 101, "other3xLinux64Guest"),
)


def _o(tag):
    return qname(OVF_NS, tag)

# --- build --------------------------------------------------------------------------------------


def _file_format(name):
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _FILE_FORMATS.get(ext, VMDK_STREAM_FORMAT)


def _os_entry(hint):
    low = (hint or "").lower()
    for prefix, cim, vmw in _OS_TYPES:
        if low.startswith(prefix):
            return cim, vmw
    return (1, "otherGuest64") if hint else (1, None)


def _check_vm(vm):
    if not isinstance(vm, dict):
        raise InvalidInputError("OVF: the VM must be a dict")
    for key in ("name", "vcpus", "memory_mib"):
        if vm.get(key) in (None, ""):
            raise InvalidInputError("OVF: the VM needs %s" % key)
    if vm.get("firmware", "bios") not in ("bios", "uefi"):
        raise InvalidInputError("OVF: firmware must be bios or uefi, not %r" % vm.get("firmware"))
    for index, disk in enumerate(vm.get("disks") or []):
        if disk.get("bus", "virtio") not in BUSES:
            raise InvalidInputError("OVF: disks[%d].bus must be one of %s, not %r" % (index, ", ".join(BUSES), disk.get("bus")))
        if not disk.get("capacity"):
            raise InvalidInputError("OVF: disks[%d] needs its capacity (virtual size in bytes)" % index)
        if disk.get("file") is not None and not SAFE_FILE_RE.match(disk["file"]):
            raise InvalidInputError("OVF: disks[%d].file %r must be a plain file name" % (index, disk["file"]))


def _rasd_item(parent, fields, attrs=None):
    """An ``Item`` with rasd children in the order the CIM schema's sequence requires (alphabetical)."""
    item = _xml.sub(parent, _o("Item"), attrs=attrs)
    for key in sorted(fields):
        value = fields[key]
        if value is None:
            continue
        _xml.sub(item, qname(RASD_NS, key), value)
    return item


def build_ovf(vm):
    """The OVF 1.0 descriptor of ``vm`` (see the module docstring) as UTF-8 bytes with an XML declaration."""
    _xml.require_lxml()
    _check_vm(vm)
    name = vm["name"]
    disks = list(vm.get("disks") or [])
    nics = list(vm.get("nics") or [])
    env = _xml.etree.Element(_o("Envelope"), nsmap=NSMAP)
    env.set(_o("version"), "1.0")

    refs = _xml.sub(env, _o("References"))
    for index, disk in enumerate(disks, 1):
        if disk.get("file"):
            attrs = {_o("href"): disk["file"], _o("id"): "file%d" % index, _o("size"): disk.get("size")}
            _xml.sub(refs, _o("File"), attrs=attrs)

    section = _xml.sub(env, _o("DiskSection"))
    _xml.sub(section, _o("Info"), "Virtual disk information")
    for index, disk in enumerate(disks, 1):
        attrs = {_o("capacity"): int(disk["capacity"]), _o("capacityAllocationUnits"): "byte",
                 _o("diskId"): "vmdisk%d" % index}
        if disk.get("file"):
            attrs[_o("fileRef")] = "file%d" % index
            attrs[_o("format")] = _file_format(disk["file"])
        _xml.sub(section, _o("Disk"), attrs=attrs)

    networks = []
    for nic in nics:
        if nic.get("network") and nic["network"] not in networks:
            networks.append(nic["network"])
    if networks:
        section = _xml.sub(env, _o("NetworkSection"))
        _xml.sub(section, _o("Info"), "The list of logical networks")
        for net in networks:
            node = _xml.sub(section, _o("Network"), attrs={_o("name"): net})
            _xml.sub(node, _o("Description"), "The %s network" % net)

    system = _xml.sub(env, _o("VirtualSystem"), attrs={_o("id"): name})
    _xml.sub(system, _o("Info"), "A virtual machine")
    _xml.sub(system, _o("Name"), name)
    cim, vmw = _os_entry(vm.get("os_hint"))
    os_section = _xml.sub(system, _o("OperatingSystemSection"), attrs={_o("id"): cim, qname(VMW_NS, "osType"): vmw})
    _xml.sub(os_section, _o("Info"), "The kind of installed guest operating system")
    if vm.get("os_hint"):
        _xml.sub(os_section, _o("Description"), vm["os_hint"])

    hw = _xml.sub(system, _o("VirtualHardwareSection"))
    _xml.sub(hw, _o("Info"), "Virtual hardware requirements")
    sys_node = _xml.sub(hw, _o("System"))
    for key, value in (("ElementName", "Virtual Hardware Family"), ("InstanceID", 0),
                       ("VirtualSystemIdentifier", name), ("VirtualSystemType", SYSTEM_TYPE)):
        _xml.sub(sys_node, qname(VSSD_NS, key), value)
    vcpus, memory = int(vm["vcpus"]), int(vm["memory_mib"])
    _rasd_item(hw, dict(AllocationUnits="hertz * 10^6", Description="Number of Virtual CPUs",
                        ElementName="%d virtual CPU(s)" % vcpus, InstanceID=1, ResourceType=RT_CPU,
                        VirtualQuantity=vcpus))
    _rasd_item(hw, dict(AllocationUnits="byte * 2^20", Description="Memory Size",
                        ElementName="%d MB of memory" % memory, InstanceID=2, ResourceType=RT_MEMORY,
                        VirtualQuantity=memory))
    next_id = [3]

    def new_id():
        next_id[0] += 1
        return next_id[0] - 1

    controllers = {}
    slots = {}
    for index, disk in enumerate(disks, 1):
        bus = disk.get("bus") or "virtio"
        kind = _CONTROLLERS[bus][0]
        if kind not in controllers:
            rtype, subtype, label = _CONTROLLERS[bus]
            cid = new_id()
            controllers[kind] = cid
            _rasd_item(hw, dict(Address=0, Description=label, ElementName="%s 0" % label,
                                InstanceID=cid, ResourceSubType=subtype, ResourceType=rtype))
        cid = controllers[kind]
        slot = slots.get(cid, 0)
        slots[cid] = slot + 1
        attrs = {qname(VIRTOPS_NS, "bus"): "virtio"} if bus == "virtio" else None
        _rasd_item(hw, dict(AddressOnParent=slot, ElementName="disk%d" % index, HostResource="ovf:/disk/vmdisk%d" % index,
                            InstanceID=new_id(), Parent=cid, ResourceType=RT_DISK), attrs=attrs)
    for index, nic in enumerate(nics, 1):
        model = nic.get("model")
        _rasd_item(hw, dict(AddressOnParent=index + 6, AutomaticAllocation="true", Connection=nic.get("network"),
                            Description="%s ethernet adapter on %s" % (model or "default", nic.get("network") or "no network"),
                            ElementName="ethernet%d" % (index - 1), InstanceID=new_id(),
                            ResourceSubType=_NIC_OUT.get(model, model) if model else None, ResourceType=RT_NIC))
    if vm.get("firmware") == "uefi":
        _xml.sub(hw, qname(VMW_NS, "Config"), attrs={_o("required"): "false", qname(VMW_NS, "key"): "firmware",
                                                     qname(VMW_NS, "value"): "efi"})
    return _xml.etree.tostring(env, xml_declaration=True, encoding="UTF-8", pretty_print=True)
