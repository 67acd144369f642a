# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Disks, CD-ROM drives and NICs added to or removed from a *running* ``vm`` without a restart.

What the running guest has (the live XML) is compared with the definition the plan writes:

* a device the running guest has and the definition does not is **detached first**, live only
  (``detachDeviceFlags`` with ``VIR_DOMAIN_AFFECT_LIVE``), and the step waits (polling the live XML)
  until the guest released it, up to ``hotplug_timeout`` seconds.  The definition is written only
  after that (the plan's ``redefine`` step comes later), so a detach the guest does not complete
  fails the run with the device still in both the definition and the running VM: they agree.  QEMU
  keeps the guest's unplug request; if the guest completes it later, the device leaves the running
  VM and the next run removes it from the definition as well.  A paused (or suspended) VM that is to
  run (``state: running``) is resumed *before* the detach (``PowerPlan.plan_wake_first``): a guest
  that does not run cannot answer the unplug request.  A VM that stays paused cannot either: its
  detach times out.  If QEMU refuses a second request while the guest has not answered the first (a
  run that timed out on a paused VM, then one that resumed it), the step waits for the first.
* a device the definition has and the running guest does not is **attached after** the definition
  was written: the very element of the saved definition (same PCI address, MAC, serial) is attached
  live, so the running VM and its next boot see the same device.

What cannot be plugged live stays a pending change (``reboot_required``): SATA and IDE devices, a
SCSI or USB device without such a controller in the running VM, and a PCI device (virtio disk,
NIC) on a q35 machine without a free PCIe root port (a new VM gets ``pcie_spare_ports``: :mod:`.pcie`).
Interfaces are matched by position, as everywhere in the ``vm`` model: NICs are added or removed
at the end of the list.  Rollback: a later failing step detaches what this run attached, and
attaches again what it detached.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, OperationTimeoutError
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.checks import check_startable
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.compare import by_target
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.pcie import pci_ports

#: buses a running guest can take a new disk or CD-ROM drive on, and the controller each needs
HOTPLUG_BUSES = {"virtio": "pci", "scsi": "scsi", "usb": "usb"}
_KIND = {"disks": "disk", "cdroms": "cdrom"}


def _live_capable(live_root, bus):
    need = HOTPLUG_BUSES.get(bus)
    if need in (None, "pci"):
        return need
    return need if live_root.find("devices/controller[@type='%s']" % need) is not None else None


def _devices(model, key):
    """``[(id, device)]``: disks and CD-ROMs by target, NICs by position."""
    if key == "interfaces":
        return [(str(i), nic) for i, nic in enumerate(model.get(key) or [])]
    return sorted(by_target(model.get(key)).items())


def plan_hotplug(vm, current, definition, plan, timeout):
    """Detach and attach steps for the device changes of running VM ``vm``; returns the model paths
    (``disks.vdb``, ``interfaces.1``) they take care of, which then need no restart."""
    live = current["_live"]
    live_root = _xml.parse(current["_live_xml"], "live domain XML")
    handled, attach = set(), []
    ports = pci_ports(live_root)
    for key in ("disks", "cdroms", "interfaces"):
        if definition.get(key) is None:
            continue
        have, want = dict(_devices(live, key)), dict(_devices(definition, key))
        for ident, dev in _devices(live, key):
            if ident not in want and (key == "interfaces" or _live_capable(live_root, dev.get("bus"))):
                saved = {}
                plan.add("detach %s from running VM %s (live, waits up to %d s for the guest)" % (_what(key, ident, dev), vm.name, timeout),
                         _detach_step(vm, key, dev, timeout, saved), undo=_attach_back(vm, key, dev, saved))
                handled.add("%s.%s" % (key, ident))
        for ident, dev in _devices(definition, key):
            if ident in have:
                continue
            need = "pci" if key == "interfaces" else _live_capable(live_root, dev.get("bus"))
            if need == "pci":
                if ports <= 0:
                    plan.warn("%s of VM %s is added at its next start: the running VM has no free PCIe root port for it"
                              % (_what(key, ident, dev), vm.name))
                    continue
                ports -= 1
            elif need is None:
                continue
            attach.append((key, ident, dev))
            handled.add("%s.%s" % (key, ident))
    return handled, attach


def plan_attach(vm, attach, plan, timeout):
    """The attach steps (after the definition was written): ``attach`` from :func:`plan_hotplug`."""
    for key, ident, dev in attach:
        dev = dict(dev)  # the attach step records the MAC libvirt gave a new NIC here, for its undo
        plan.add("attach %s to running VM %s (live)" % (_what(key, ident, dev), vm.name),
                 _attach_step(vm, key, ident, dev), undo=_detach_step(vm, key, dev, timeout, rollback=True))


def check_attach(vm, definition_xml, attach, made):
    """What makes an attach fail and can be known before anything is done (a disk file that does not
    exist, an inactive network): the start check of :mod:`.checks` on the devices to attach."""
    if not attach:
        return
    root = _xml.parse(definition_xml, "domain XML")
    part = _xml.element("domain")
    _xml.sub(part, "name", vm.name)
    _xml.sub(part, "cpu", attrs={"check": "none"})  # the running VM's CPU is not in question
    devices = _xml.sub(part, "devices")
    for key, ident, dev in attach:
        node = _find(root, key, dev, int(ident) if key == "interfaces" else None)
        if node is not None:
            devices.append(copy.deepcopy(node))
    check_startable(vm.ctx, part, made)


def _what(key, ident, dev):
    if key == "interfaces":
        return " ".join(w for w in ("interface", ident, "(%s)" % dev["mac"] if dev.get("mac") else "") if w)
    return "%s %s" % ("CD-ROM drive" if key == "cdroms" else "disk", ident)


def _find(root, key, dev, index=None):
    """The element of ``dev`` in the domain element ``root`` (a NIC by MAC, or by ``index``)."""
    if key == "interfaces":
        nics = root.findall("devices/interface")
        if dev.get("mac"):
            found = [n for n in nics if (_xml.find_attr(n, "mac", "address") or "").lower() == dev["mac"].lower()]
            return found[0] if found else None
        return nics[index] if index is not None and index < len(nics) else None
    for node in root.findall("devices/disk[@device='%s']" % _KIND[key]):
        if _xml.find_attr(node, "target", "dev") == dev["target"]:
            return node
    return None


def _attach_step(vm, key, ident, dev):
    def call():
        dom = vm._lookup()
        with libvirt_errors("attaching %s to VM %s" % (_what(key, ident, dev), vm.name)):
            config = _xml.parse(vm._inactive_xml(dom))
            node = _find(config, key, dev, int(ident) if key == "interfaces" else None)
            if node is None:
                raise ConflictError("%s is not in the definition of VM %s" % (_what(key, ident, dev), vm.name))
            live_root = _xml.parse(dom.XMLDesc(0))
            address = node.find("address")
            if address is not None and address.get("type") == "pci" and not _port_free(live_root, address):
                node.remove(address)  # the running VM has another free port for it
            dom.attachDeviceFlags(_xml.to_string(node, pretty=False), libvirt.VIR_DOMAIN_AFFECT_LIVE)
            if key == "interfaces":
                dev["mac"] = _xml.find_attr(node, "mac", "address")

    return call


def _port_free(live_root, address):
    bus = int(address.get("bus") or "0", 16)
    port = live_root.find("devices/controller[@type='pci'][@index='%d']" % bus)
    if port is None:
        return False
    return not any(int(a.get("bus") or "0", 16) == bus for a in live_root.findall("devices/*/address[@type='pci']"))


def _attach_back(vm, key, dev, saved):
    """Undo of a live detach: the element the running VM had (``saved['xml']``), attached again."""

    def call():
        if "xml" not in saved:
            return
        dom = vm._lookup()
        with libvirt_errors("attaching %s back to VM %s" % (_what(key, dev.get("target") or "", dev), vm.name)):
            dom.attachDeviceFlags(saved["xml"], libvirt.VIR_DOMAIN_AFFECT_LIVE)

    return call


def _detach_step(vm, key, dev, timeout, saved=None, rollback=False):
    """Detach ``dev`` live and wait until the guest released it; ``saved['xml']`` gets its element."""
    def call():
        dom = vm._lookup()
        what = _what(key, dev.get("target") or "", dev)
        with libvirt_errors("detaching %s from VM %s" % (what, vm.name)):
            node = _find(_xml.parse(dom.XMLDesc(0)), key, dev)
            if node is None:
                return
            text = _xml.to_string(node, pretty=False)
            if saved is not None:
                saved["xml"] = text
            deadline = time.monotonic() + timeout
            _request_unplug(dom, text)
            while _find(_xml.parse(dom.XMLDesc(0)), key, dev) is not None:
                if time.monotonic() >= deadline:
                    raise OperationTimeoutError(
                        "%s of VM %s: the guest did not release it within %d s (hotplug_timeout); %s; QEMU keeps the "
                        "unplug request: if the guest completes it later, run the task again to remove the device from "
                        "the definition too" % (what, vm.name, timeout, "it stays in the running VM" if rollback
                                                else "the definition still has it, as the running VM does"))
                time.sleep(0.5)

    return call


#: QEMU's answer to a second unplug request while the guest has not answered the first (an earlier
#: run that timed out, then resumed the VM): the request stands, so the step waits for it
_PENDING = "already in the process of unplug"


def _request_unplug(dom, text):
    try:
        dom.detachDeviceFlags(text, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except libvirt.libvirtError as exc:
        if _PENDING not in str(exc):
            raise
