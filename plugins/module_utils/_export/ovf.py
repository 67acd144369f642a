# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""OVF 1.0 descriptors (DMTF DSP0243) and OVA manifests: build them for ``export``, read them for ``vm_import``.

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

BUSES = ("virtio", "sata", "scsi", "ide")

# CIM resource types (DSP1041 / CIM_ResourceAllocationSettingData)
RT_OTHER, RT_CPU, RT_MEMORY, RT_IDE, RT_SCSI, RT_NIC = 1, 3, 4, 5, 6, 10
RT_CDROM, RT_DVD, RT_DISK, RT_SATA = 15, 16, 17, 20
_CONTROLLER_BUS = {RT_IDE: "ide", RT_SCSI: "scsi", RT_SATA: "sata"}
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
_NIC_IN = {"e1000": "e1000", "e1000e": "e1000e", "vmxnet3": "vmxnet3", "vmxnet2": "vmxnet3", "vmxnet": "vmxnet3",
           "pcnet32": "pcnet", "pcnet": "pcnet", "am79c970a": "pcnet", "am79c973": "pcnet", "virtio": "virtio",
           "virtio-net": "virtio", "virtionet": "virtio", "rtl8139": "rtl8139", "e1000g": "e1000"}

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
#: CIM OsType ids -> a hint, for OVFs with neither a description nor a VMware guest id
_CIM_OS_NAMES = {36: "linux", 79: "rhel", 80: "rhel", 82: "suse", 83: "suse", 93: "ubuntu", 94: "ubuntu",
                 95: "debian", 96: "debian", 97: "linux", 98: "linux", 99: "linux", 100: "linux", 101: "linux",
                 106: "centos", 107: "centos", 78: "freebsd", 42: "freebsd"}

_MIB = 1024 * 1024
_UNIT_WORDS = {"byte": 1, "bytes": 1, "kilobytes": 1024, "kb": 1024, "megabytes": _MIB, "mb": _MIB,
               "gigabytes": 1024 ** 3, "gb": 1024 ** 3, "terabytes": 1024 ** 4, "tb": 1024 ** 4}
_UNIT_RE = re.compile(r"^byte\s*(?:\*\s*(\d+)\s*\^\s*(-?\d+))?$")
_ANY_SHA_RE = re.compile(r"^(SHA1|SHA256|SHA512)\s*\(([^)]+)\)\s*=\s*([0-9a-fA-F]+)$")
_SAFE_FILE_RE = re.compile(r"^[^/\\\x00-\x1f]+$")


def _q(ns, tag):
    return "{%s}%s" % (ns, tag)


def _o(tag):
    return _q(OVF_NS, tag)


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
        if disk.get("file") is not None and not _SAFE_FILE_RE.match(disk["file"]):
            raise InvalidInputError("OVF: disks[%d].file %r must be a plain file name" % (index, disk["file"]))


def _rasd_item(parent, fields, attrs=None):
    """An ``Item`` with rasd children in the order the CIM schema's sequence requires (alphabetical)."""
    item = _xml.sub(parent, _o("Item"), attrs=attrs)
    for key in sorted(fields):
        value = fields[key]
        if value is None:
            continue
        _xml.sub(item, _q(RASD_NS, key), value)
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
    os_section = _xml.sub(system, _o("OperatingSystemSection"), attrs={_o("id"): cim, _q(VMW_NS, "osType"): vmw})
    _xml.sub(os_section, _o("Info"), "The kind of installed guest operating system")
    if vm.get("os_hint"):
        _xml.sub(os_section, _o("Description"), vm["os_hint"])

    hw = _xml.sub(system, _o("VirtualHardwareSection"))
    _xml.sub(hw, _o("Info"), "Virtual hardware requirements")
    sys_node = _xml.sub(hw, _o("System"))
    for key, value in (("ElementName", "Virtual Hardware Family"), ("InstanceID", 0),
                       ("VirtualSystemIdentifier", name), ("VirtualSystemType", SYSTEM_TYPE)):
        _xml.sub(sys_node, _q(VSSD_NS, key), value)
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
        attrs = {_q(VIRTOPS_NS, "bus"): "virtio"} if bus == "virtio" else None
        _rasd_item(hw, dict(AddressOnParent=slot, ElementName="disk%d" % index, HostResource="ovf:/disk/vmdisk%d" % index,
                            InstanceID=new_id(), Parent=cid, ResourceType=RT_DISK), attrs=attrs)
    for index, nic in enumerate(nics, 1):
        model = nic.get("model")
        _rasd_item(hw, dict(AddressOnParent=index + 6, AutomaticAllocation="true", Connection=nic.get("network"),
                            Description="%s ethernet adapter on %s" % (model or "default", nic.get("network") or "no network"),
                            ElementName="ethernet%d" % (index - 1), InstanceID=new_id(),
                            ResourceSubType=_NIC_OUT.get(model, model) if model else None, ResourceType=RT_NIC))
    if vm.get("firmware") == "uefi":
        _xml.sub(hw, _q(VMW_NS, "Config"), attrs={_o("required"): "false", _q(VMW_NS, "key"): "firmware",
                                                  _q(VMW_NS, "value"): "efi"})
    return _xml.etree.tostring(env, xml_declaration=True, encoding="UTF-8", pretty_print=True)


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
    for key in (_q(OVF_NS, name), _q(OVF2_NS, name), name):
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
    vmw = section.get(_q(VMW_NS, "osType"))
    if vmw:
        return vmw
    cim = _attr(section, "id")
    try:
        return _CIM_OS_NAMES.get(int(cim)) if cim is not None else None
    except ValueError:
        return None


def _firmware(hw):
    for node in hw:
        if _local(node.tag) in ("Config", "ExtraConfig") and (node.get(_q(VMW_NS, "key")) or "").lower() == "firmware":
            return "uefi" if (node.get(_q(VMW_NS, "value")) or "").lower() == "efi" else "bios"
    return "bios"


def _items(hw):
    return [n for n in hw if _local(n.tag) in ("Item", "StorageItem", "EthernetPortItem")]


def _nic_model(subtype):
    if not subtype:
        return None
    return _NIC_IN.get(subtype.strip().lower(), subtype.strip().lower())


def parse_ovf(data):
    """An OVF descriptor (bytes or str) -> the VM dict (see the module docstring).

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
    bus = item.get(_q(VIRTOPS_NS, "bus"))
    if bus not in BUSES:
        parent = by_instance.get(_text(item, "Parent"))
        ptype = _text(parent, "ResourceType") if parent is not None else None
        bus = _CONTROLLER_BUS.get(_int(ptype, "a controller's ResourceType") if ptype else None, "sata")
    return dict(file=entry["file"], size=entry["size"], capacity=entry["capacity"], bus=bus)


# --- manifests ----------------------------------------------------------------------------------


def manifest(files):
    """An OVA manifest: one ``SHA256(name)= hex`` line per file, in the given order (dict order)."""
    lines = []
    for name, digest in files.items():
        if not _SAFE_FILE_RE.match(name) or not re.match(r"^[0-9a-fA-F]{64}$", digest or ""):
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
