# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host's PCI and USB devices, from libvirt's node device API (``listAllDevices`` + ``XMLDesc``):
no ``lspci`` on the hypervisor, and the same answer for a remote one.

A PCI device is named two ways, and ``vm.hostdevs`` takes both: libvirt's node device name
(``pci_0000_01_00_0``) and its PCI address (``0000:01:00.0``, the canonical form in a VM's model).
Who uses a device is read from every VM's definition (:mod:`._core.usage`): a device some VM names in
a ``<hostdev>`` is in use by it, whether that VM runs or not.

What :func:`host_devices` returns: ``pci`` (every PCI device: vendor, product, class, driver, IOMMU
group, ``vfio`` when bound to vfio-pci, SR-IOV ``physical_function`` / ``virtual_functions``, mediated
device types), ``usb`` and the views ``gpus`` (PCI class 0x03) and ``mdev_types``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import describe, usage, vm_names

#: PCI base classes by their number (the first byte of the class code)
PCI_CLASSES = {0x01: "storage", 0x02: "network", 0x03: "display", 0x04: "multimedia", 0x06: "bridge",
               0x0c: "serial-bus", 0x12: "accelerator"}
GPU_CLASS = 0x03


# --- names ----------------------------------------------------------------------------------------


def pci_device_name(address):
    """``0000:01:00.0`` -> libvirt's node device name ``pci_0000_01_00_0``."""
    return "pci_" + address.replace(":", "_").replace(".", "_")


def _address_text(node):
    if node is None:
        return None
    values = []
    for key in ("domain", "bus", "slot", "function"):
        text = node.get(key) or node.findtext(key) or "0"
        values.append(int(text, 0) if text.startswith("0x") else int(text))
    return "%04x:%02x:%02x.%x" % tuple(values)


def _id(node):
    """``dict(id='0x10de', name='NVIDIA Corporation')`` of a ``<vendor>``/``<product>``."""
    if node is None:
        return dict(id=None, name=None)
    return dict(id=node.get("id"), name=(node.text or "").strip() or None)


# --- node device XML -> facts -----------------------------------------------------------------------


def pci_facts(root):
    """One PCI device (the parsed ``<device>``) as a dict (``used_by`` and ``free`` are filled later)."""
    cap = root.find("capability[@type='pci']")
    class_text = _xml.find_text(cap, "class") or "0x000000"
    class_code = int(class_text, 16)
    driver = _xml.find_text(root, "driver/name")
    phys = cap.find("capability[@type='phys_function']/address")
    group = cap.find("iommuGroup")
    facts = dict(
        name=_xml.find_text(root, "name"),
        address=_address_text(cap),
        parent=_xml.find_text(root, "parent"),
        vendor=_id(cap.find("vendor")),
        product=_id(cap.find("product")),
        class_code="0x%06x" % class_code,
        class_name=PCI_CLASSES.get(class_code >> 16, "other"),
        gpu=class_code >> 16 == GPU_CLASS,
        driver=driver,
        vfio=driver == "vfio-pci",
        iommu_group=int(group.get("number")) if group is not None and (group.get("number") or "").isdigit() else None,
        iommu_group_devices=sorted(_address_text(a) for a in group.findall("address")) if group is not None else [],
        physical_function=_address_text(phys),
        virtual_functions=[_address_text(a) for a in cap.findall("capability[@type='virt_functions']/address")],
        max_virtual_functions=_max_count(cap.find("capability[@type='virt_functions']")),
        mdev_types=[_mdev_type(t) for t in cap.findall("capability[@type='mdev_types']/type")],
    )
    return facts


def _max_count(node):
    if node is None or not (node.get("maxCount") or "").isdigit():
        return None
    return int(node.get("maxCount"))


def _mdev_type(node):
    instances = _xml.find_text(node, "availableInstances")
    return dict(id=node.get("id"), name=_xml.find_text(node, "name"), device_api=_xml.find_text(node, "deviceAPI"),
                available_instances=int(instances) if instances and instances.isdigit() else None)


def usb_facts(root):
    cap = root.find("capability[@type='usb_device']")
    bus, device = _xml.find_text(cap, "bus"), _xml.find_text(cap, "device")
    return dict(
        name=_xml.find_text(root, "name"),
        parent=_xml.find_text(root, "parent"),
        bus=int(bus) if bus and bus.isdigit() else None,
        device=int(device) if device and device.isdigit() else None,
        vendor=_id(cap.find("vendor")),
        product=_id(cap.find("product")),
        driver=_xml.find_text(root, "driver/name"),
    )


def _usb_used(dev, use):
    if use["bus"] is not None and use["device"] is not None:
        return (use["bus"], use["device"]) == (dev["bus"], dev["device"])
    ids = tuple(int(v["id"], 16) if v["id"] else None for v in (dev["vendor"], dev["product"]))
    return use["vendor"] is not None and (use["vendor"], use["product"]) == ids


# --- the host --------------------------------------------------------------------------------------


def _device_roots(conn, flags):
    with libvirt_errors("listing the host's node devices"):
        devices = conn.listAllDevices(flags)
    roots = []
    for dev in devices:
        try:
            roots.append(_xml.parse(dev.XMLDesc(0), "node device XML"))
        except libvirt.libvirtError:
            continue  # unplugged while we looked
    return sorted(roots, key=lambda root: _xml.find_text(root, "name") or "")


def host_devices(ctx):
    """Every PCI and USB device of the host, with the VMs that use each (see the module's RETURN)."""
    pci_flag = flag("VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV", 2)
    usb_flag = flag("VIR_CONNECT_LIST_NODE_DEVICES_CAP_USB_DEV", 4)
    uses = usage(ctx).hostdev_uses()
    pci, usb = [], []
    for root in _device_roots(ctx.conn, pci_flag | usb_flag):
        if root.find("capability[@type='pci']") is not None:
            dev = pci_facts(root)
            users = [u for u in uses if u["type"] == "pci" and u["address"] == dev["address"]]
            pci.append(dev)
        elif root.find("capability[@type='usb_device']") is not None:
            dev = usb_facts(root)
            users = [u for u in uses if u["type"] == "usb" and _usb_used(dev, u)]
            usb.append(dev)
        else:
            continue
        dev["used_by"] = vm_names(users)
        dev["free"] = not users
    mdev_types = [dict(t, parent=dev["name"], parent_address=dev["address"]) for dev in pci for t in dev["mdev_types"]]
    return dict(pci=pci, usb=usb, gpus=[dev for dev in pci if dev["gpu"]],
                virtual_functions=[dev for dev in pci if dev["physical_function"]], mdev_types=mdev_types)


def check_hostdevs(ctx, addresses, vm_name, skip=(), known=()):
    """The PCI devices ``addresses`` (canonical) a VM is to pass through: each exists on the host
    (NotFoundError) and no other VM names it (ConflictError, naming them).  ``skip``: the VMs that are
    this one (its name, the one it is renamed from); ``known``: devices the VM has already (not checked)."""
    new = [(index, address) for index, address in enumerate(addresses or ()) if address not in known]
    for index, address in new:
        name = pci_device_name(address)
        try:
            ctx.conn.nodeDeviceLookupByName(name)
        except libvirt.libvirtError:
            raise NotFoundError("hostdevs[%d]: the host has no PCI device %s (%s); host_device_info lists the devices "
                                "there are" % (index, address, name))
    if not new:
        return
    uses = usage(ctx).hostdev_uses(exclude_vms=tuple(skip) + (vm_name,))
    for index, address in new:
        users = [u for u in uses if u["type"] == "pci" and u["address"] == address]
        if users:
            ctx.assume(ConflictError("hostdevs[%d]: PCI device %s is passed through to %s already; a device serves one VM, "
                                     "remove it there first" % (index, address, describe([dict(u, role="hostdev") for u in users])),
                                     used_by=vm_names(users)))


def gather_host_devices(ctx):
    """What ``host_device_info`` returns (``changed`` is always False)."""
    found = host_devices(ctx)
    return dict(changed=False, pci_devices=found["pci"], usb_devices=found["usb"], gpus=found["gpus"],
                virtual_functions=found["virtual_functions"], mdev_types=found["mdev_types"])
