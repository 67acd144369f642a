# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The VM model: its keys and choices, and how it is read from a domain definition.

The model is a plain dict with the same shape whether it comes from module parameters
(:func:`normalize.normalize`) or from a domain definition (:func:`model_from_xml`), so that the
generic difference tracker can compare the two.  ``None`` means "not specified" and is never compared.

* ``memory`` and ``max_memory`` are MiB; disk ``size`` is bytes.
* ``disks`` and ``cdroms`` are matched by target device (``vda``, ``sdb``); ``interfaces`` by
  position.  A device list, once given, is the whole list of that kind of device.

This file only reads: module parameters become a model in ``normalize``, a model becomes XML in
``codec_write`` (top level) and ``codec_devices`` (devices).  Read-only code (``vm_info``, the
inventory plugin) imports this file alone.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._storage.encryption_xml import encryption_of
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.names import validate_object_name
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import from_libvirt_units
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.model_tuning import read_shares, read_tuning

MIB = 1024 * 1024

DISK_BUSES = ("virtio", "scsi", "sata", "ide", "usb")
CDROM_BUSES = ("sata", "ide", "scsi", "usb")
BUS_PREFIX = {"virtio": "vd", "scsi": "sd", "sata": "sd", "usb": "sd", "ide": "hd"}
DISK_FORMATS = ("qcow2", "raw")
CACHE_MODES = ("default", "none", "writethrough", "writeback", "directsync", "unsafe")
DISCARD_MODES = ("unmap", "ignore")
CPU_MODES = ("host-passthrough", "host-model", "custom", "maximum")
BOOT_DEVICES = ("hd", "cdrom", "network", "fd")
INTERFACE_MODELS = ("virtio", "e1000", "e1000e", "rtl8139", "vmxnet3")
DIRECT_MODES = ("bridge", "vepa", "private", "passthrough")
GRAPHICS_TYPES = ("vnc", "spice", "none")
WATCHDOG_MODELS = ("i6300esb", "itco", "ib700")
WATCHDOG_ACTIONS = ("reset", "shutdown", "poweroff", "pause", "none", "dump", "inject-nmi")


def validate_name(name):
    return validate_object_name(name, "VM")


def mac_problem(mac):
    """Why the MAC address ``mac`` (lower case, colons) cannot be a NIC's, or None."""
    if int(mac[:2], 16) & 1:
        return "is a multicast address; a NIC needs a unicast MAC"
    if mac == "00:00:00:00:00:00":
        return "is all zeros; give a real address, or leave mac out and libvirt makes one"
    return None


#: what a new VM gets for what the user left unspecified
CREATION_DEFAULTS = dict(
    vcpus=1,
    memory=1024,
    machine="q35",
    firmware="bios",
    graphics=dict(type="vnc", listen="127.0.0.1", port=-1, password=None),
    serial=dict(type="pty", path=None),
    guest_agent=True,
    rng=True,
    disks=[],
    cdroms=[],
    interfaces=[],
)


# --- XML -> model -------------------------------------------------------------------------------


def _mem_mib(root, path):
    node = root.find(path)
    if node is None or node.text is None:
        return None
    return from_libvirt_units(node.text.strip(), node.get("unit") or "KiB") // MIB


def _source_path(dev):
    src = dev.find("source")
    if src is None:
        return None
    return src.get("file") or src.get("dev") or src.get("name")


def _boot_order(dev):
    order = _xml.find_attr(dev, "boot", "order")
    return int(order) if order is not None and order.isdigit() else None


def _disk_model(disk):
    src = disk.find("source")
    driver = disk.find("driver")
    return dict(
        target=_xml.find_attr(disk, "target", "dev"),
        bus=_xml.find_attr(disk, "target", "bus"),
        path=_source_path(disk),
        pool=src.get("pool") if src is not None else None,
        volume=src.get("volume") if src is not None else None,
        format=driver.get("type") if driver is not None else None,
        cache=(driver.get("cache") if driver is not None else None) or "default",
        discard=(driver.get("discard") if driver is not None else None) or "ignore",
        serial=_xml.find_text(disk, "serial"),
        readonly=disk.find("readonly") is not None,
        boot_order=_boot_order(disk),
        encryption=encryption_of(disk),
    )


_CDROM_MODEL_KEYS = ("target", "bus", "path", "pool", "volume", "boot_order")


def _cdrom_model(disk):
    """A CD-ROM drive: the part of the disk model that a drive has."""
    model = _disk_model(disk)
    return dict((key, model[key]) for key in _CDROM_MODEL_KEYS)


def _interface_model(nic):
    kind = nic.get("type")
    src = nic.find("source")
    source = None
    if src is not None:
        source = {"network": src.get("network"), "bridge": src.get("bridge"), "direct": src.get("dev")}.get(kind)
    return dict(
        type=kind,
        source=source,
        mode=src.get("mode") if kind == "direct" and src is not None else None,
        model=_xml.find_attr(nic, "model", "type"),
        mac=(_xml.find_attr(nic, "mac", "address") or "").lower() or None,
        boot_order=_boot_order(nic),
        target=_xml.find_attr(nic, "target", "dev"),
        filter=filter_model(nic.find("filterref")),
    )


def filter_model(node):
    """An interface's ``<filterref>`` -> ``{name, parameters: ['NAME=value', ...]}`` (sorted), or None."""
    if node is None:
        return None
    params = sorted("%s=%s" % (p.get("name"), p.get("value")) for p in node.findall("parameter"))
    return dict(name=node.get("filter"), parameters=params)


def _graphics_model(root):
    node = root.find("devices/graphics")
    if node is None:
        return dict(type="none")
    port = node.get("port")
    listen = node.get("listen") or _xml.find_attr(node, "listen", "address")
    return dict(
        type=node.get("type"),
        listen=listen,
        port=-1 if node.get("autoport") == "yes" else (int(port) if port and port.lstrip("-").isdigit() else None),
        password=node.get("passwd") or "",
    )


def _serial_model(root):
    node = root.find("devices/serial")
    if node is None:
        return dict(type="none", path=None)
    kind = node.get("type")
    return dict(type=kind, path=_xml.find_attr(node, "source", "path") if kind == "file" else None)


def _firmware_model(os_node):
    if os_node is None:
        return "bios", False
    loader = os_node.find("loader")
    efi = os_node.get("firmware") == "efi" or (loader is not None and loader.get("type") == "pflash")
    secure = bool(
        (loader is not None and loader.get("secure") == "yes")
        or os_node.find("firmware/feature[@name='secure-boot'][@enabled='yes']") is not None
    )
    return ("uefi" if efi else "bios"), secure


def _metadata_model(root):
    node = root.find("metadata/{%s}vm" % _xml.VIRTOPS_NS)
    if node is None:
        return [], {}
    tags = sorted(t.text for t in node.findall("{%s}tags/{%s}tag" % (_xml.VIRTOPS_NS, _xml.VIRTOPS_NS)) if t.text)
    meta = dict((m.get("key"), m.text or "") for m in node.findall("{%s}meta" % _xml.VIRTOPS_NS) if m.get("key"))
    return tags, meta


def _vcpus_model(root):
    """``(vcpus, max_vcpus)``: the current and the maximum vCPU count."""
    vcpu = root.find("vcpu")
    max_vcpus = int(vcpu.text) if vcpu is not None and vcpu.text else 1
    vcpus = int(vcpu.get("current")) if vcpu is not None and vcpu.get("current") else max_vcpus
    return vcpus, max_vcpus


#: the keys :func:`summary_from_xml` reads (what the inventory plugin keeps of a definition)
SUMMARY_KEYS = (
    "name", "uuid", "title", "description", "vcpus", "max_vcpus", "memory", "max_memory", "arch",
    "machine", "virt_type", "firmware", "tags", "metadata", "disks", "interfaces",
)


def summary_from_xml(root):
    """The ``SUMMARY_KEYS`` of :func:`model_from_xml`'s model of the parsed domain ``root``, read by the same
    helpers, without the rest (CPU, graphics, CD-ROMs...): what the inventory reads of hundreds of VMs."""
    if root.tag != "domain":
        raise InvalidInputError("domain XML: the root element must be <domain>, not <%s>" % root.tag)
    vcpus, max_vcpus = _vcpus_model(root)
    max_memory = _mem_mib(root, "memory")
    tags, meta = _metadata_model(root)
    return dict(
        name=_xml.find_text(root, "name"),
        uuid=_xml.find_text(root, "uuid"),
        title=_xml.find_text(root, "title") or "",
        description=_xml.find_text(root, "description") or "",
        vcpus=vcpus,
        max_vcpus=max_vcpus,
        memory=_mem_mib(root, "currentMemory") or max_memory,
        max_memory=max_memory,
        arch=_xml.find_attr(root, "os/type", "arch"),
        machine=_xml.find_attr(root, "os/type", "machine"),
        virt_type=root.get("type"),
        firmware=_firmware_model(root.find("os"))[0],
        tags=tags,
        metadata=meta,
        disks=[_disk_model(d) for d in root.findall("devices/disk") if (d.get("device") or "disk") == "disk"],
        interfaces=[_interface_model(n) for n in root.findall("devices/interface")],
    )


def model_from_xml(text_or_node):
    """Domain XML -> model.  Every key is filled (with libvirt's effective value where it has one): the
    :func:`summary_from_xml` keys and the rest."""
    root = _xml.parse(text_or_node, "domain XML") if isinstance(text_or_node, (str, bytes)) else text_or_node
    model = summary_from_xml(root)
    os_node = root.find("os")
    cpu_node = root.find("cpu")
    cpu = dict(mode=None, model=None, sockets=None, cores=None, threads=None)
    if cpu_node is not None:
        topo = cpu_node.find("topology")
        cpu.update(
            mode=cpu_node.get("mode") or ("custom" if cpu_node.find("model") is not None else None),
            model=_xml.find_text(cpu_node, "model"),
            sockets=int(topo.get("sockets")) if topo is not None and topo.get("sockets") else None,
            cores=int(topo.get("cores")) if topo is not None and topo.get("cores") else None,
            threads=int(topo.get("threads")) if topo is not None and topo.get("threads") else None,
        )
    watchdog = root.find("devices/watchdog")
    model.update(
        cpu=cpu,
        secure_boot=_firmware_model(os_node)[1],
        nvram_template=_xml.find_attr(root, "os/nvram", "template"),
        nvram=_xml.find_text(root, "os/nvram"),
        boot=[b.get("dev") for b in root.findall("os/boot")],
        kernel=_xml.find_text(root, "os/kernel") or "",
        initrd=_xml.find_text(root, "os/initrd") or "",
        cmdline=_xml.find_text(root, "os/cmdline") or "",
        cdroms=[_cdrom_model(d) for d in root.findall("devices/disk") if d.get("device") == "cdrom"],
        graphics=_graphics_model(root),
        serial=_serial_model(root),
        guest_agent=root.find("devices/channel/target[@name='org.qemu.guest_agent.0']") is not None,
        rng=root.find("devices/rng") is not None,
        watchdog=dict(model=watchdog.get("model"), action=watchdog.get("action")) if watchdog is not None else None,
        hostdevs=sorted(_hostdev_address(h) for h in root.findall("devices/hostdev[@type='pci']")),
        xml_sha256=_xml.find_attr(root, "metadata/{%s}vm" % _xml.VIRTOPS_NS, XML_HASH_ATTR),
    )
    model.update(read_shares(root))
    model.update(read_tuning(root))
    return model


#: attribute of <virtops:vm> holding the hash of the user XML a VM was defined from (``xml`` option)
XML_HASH_ATTR = "xml-sha256"


def _hostdev_address(node):
    addr = node.find("source/address")
    if addr is None:
        return None
    return pci_address(addr)


def pci_address(addr):
    """``<address domain= bus= slot= function=>`` -> ``0000:01:00.0``."""
    return "%04x:%02x:%02x.%x" % tuple(int(addr.get(k, "0"), 16) for k in ("domain", "bus", "slot", "function"))
