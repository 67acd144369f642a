# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Free PCIe root ports: how many PCI devices a q35 VM can take live, and spare ports for a new VM.

On a q35 machine every PCI Express device (virtio disk, NIC, virtio-scsi controller) sits on a
``pcie-root-port`` of its own, and a root port itself cannot be plugged in while the VM runs: a
running VM takes as many new PCI devices as it has free root ports.  libvirt adds one free port to a
new q35 definition, and only when the definition names no root port (libvirt's "PCI topology and
hotplug" page; with three ports given for four devices libvirt 9.0 added one for the fourth device
and none to spare).  virt-install adds 14 root ports in all, about half of them free.

A new VM that the ``vm`` module defines from its model (or clones) gets ``pcie_spare_ports`` free
root ports (default :data:`DEFAULT_SPARE`): the definition is written as usual, libvirt places the
devices, then the module counts the root ports no device uses and, when there are fewer, adds the
missing ones (libvirt gives them their index and address) and writes the definition once more.
Counting after libvirt placed the devices is exact whatever devices libvirt adds by itself (USB
controller, balloon, virtio-serial).  Four spares take a few disks or NICs live between restarts;
each port is a small QEMU device for which the firmware reserves I/O and memory windows, which is
why it is not dozens.

Only a *new* definition gets them: controllers are not part of the VM model (:mod:`.compare` compares
what the user specified), so VMs defined earlier, by libvirt's defaults or an older version of this
collection, are never changed or reported as changed for their ports.  A VM defined from the user's
``xml`` keeps exactly what that XML says.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.codec_devices import _devices, _insert_device

#: free root ports a new q35 VM gets (option ``pcie_spare_ports``)
DEFAULT_SPARE = 4
#: free ports reported for a machine with a PCI root bus (i440fx): its 31 slots take hot-plugged devices
PCI_ROOT_PORTS = 1000
#: the saved definition with its secrets (a VNC password must survive the second define)
_XML_SAVED = flag("VIR_DOMAIN_XML_INACTIVE", 2) | flag("VIR_DOMAIN_XML_SECURE", 1)


def spare_ports(given):
    """The option ``pcie_spare_ports`` checked: free PCIe root ports a new q35 VM gets."""
    if given is None:
        return DEFAULT_SPARE
    if not 0 <= given <= 32:
        raise InvalidInputError("pcie_spare_ports must be between 0 and 32, got %d" % given)
    return given


def pci_ports(root):
    """How many PCI devices the VM of domain element ``root`` can take live: its free PCIe root ports
    on q35, else (a PCI root bus) :data:`PCI_ROOT_PORTS`."""
    controllers = root.findall("devices/controller[@type='pci']")
    if not any(c.get("model") == "pcie-root" for c in controllers):
        return PCI_ROOT_PORTS
    used = set()
    for addr in root.findall("devices/*/address[@type='pci']"):
        used.add(int(addr.get("bus") or "0", 16))
    ports = [int(c.get("index")) for c in controllers if c.get("model") == "pcie-root-port" and c.get("index") is not None]
    return len([p for p in ports if p not in used])


def add_root_ports(root, count):
    """``count`` more ``pcie-root-port`` controllers in domain element ``root`` (libvirt numbers them)."""
    devices = _devices(root)
    while count > 0:
        _insert_device(devices, _xml.element("controller", attrs={"type": "pci", "model": "pcie-root-port"}))
        count -= 1
    return root


def define_with_spare_ports(define, xml_text, spare):
    """``define(xml_text)`` (returns the domain), then, for a q35 VM with fewer than ``spare`` free root
    ports, the definition libvirt made with the missing ports added, defined again."""
    dom = define(xml_text)
    if not spare:
        return dom
    root = _xml.parse(dom.XMLDesc(_XML_SAVED), "domain XML")
    missing = spare - pci_ports(root)
    if missing <= 0:
        return dom
    return define(_xml.to_string(add_root_ports(root, missing)))
