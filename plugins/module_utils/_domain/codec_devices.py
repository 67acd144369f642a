# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The VM model -> domain XML: the devices (disks, CD-ROMs, interfaces, graphics, serial, agent
channel, RNG, watchdog, PCI host devices), and the element placement helpers that ``codec_write``
shares.  Each setter writes the specified part of the model and keeps what libvirt added.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.encryption_xml import encryption_element
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.model import _hostdev_address, _serial_model

# The order of the top-level elements in libvirt's own output (its schema accepts any order, but
# keeping its order keeps definitions readable and stable).
_TOP_ORDER = ("name", "uuid", "title", "description", "metadata", "maxMemory", "memory", "currentMemory",
              "blkiotune", "memtune", "memoryBacking", "vcpu", "vcpus", "iothreads", "cputune", "resource",
              "sysinfo", "os", "idmap", "features", "cpu", "clock", "on_poweroff", "on_reboot", "on_crash",
              "pm", "perf", "devices", "seclabel")


def _place(parent, node, order):
    """Insert ``node`` into ``parent`` before the first child that ``order`` puts after it."""
    rank = order.index(node.tag) if node.tag in order else len(order)
    for existing in parent:
        other = existing.tag if isinstance(existing.tag, str) else None
        if other in order and order.index(other) > rank:
            existing.addprevious(node)
            return node
    parent.append(node)
    return node


def _child(root, tag, order=_TOP_ORDER):
    """The child ``tag`` of ``root``, created at its place in ``order`` when missing."""
    node = root.find(tag)
    if node is not None:
        return node
    return _place(root, _xml.element(tag), order)


def _drop(root, path):
    for node in root.findall(path):
        node.getparent().remove(node)


def _set_text(root, tag, value):
    if value is None:
        return
    if value == "":
        _drop(root, tag)
        return
    _child(root, tag).text = str(value)


def _boot_element(dev, order):
    _drop(dev, "boot")
    if order:
        _xml.sub(dev, "boot", attrs={"order": order})


def _devices(root):
    return _child(root, "devices")


def _source_element(dev, path, pool=None, volume=None):
    """``<source>`` of a disk: a file, a block device or a pool volume; None empties a cdrom."""
    _drop(dev, "source")
    if path is None and not volume:
        dev.set("type", "file")
        return
    if volume:
        dev.set("type", "volume")
        node = _xml.element("source", attrs={"pool": pool, "volume": volume})
    elif path.startswith("/dev/"):
        dev.set("type", "block")
        node = _xml.element("source", attrs={"dev": path})
    else:
        dev.set("type", "file")
        node = _xml.element("source", attrs={"file": path})
    driver = dev.find("driver")
    if driver is not None:
        driver.addnext(node)
    else:
        dev.insert(0, node)


def _fill_disk(dev, disk, device):
    driver = dev.find("driver")
    if driver is None:
        driver = _xml.element("driver", attrs={"name": "qemu"})
        dev.insert(0, driver)
    if device == "cdrom":
        driver.set("type", "raw")
    elif disk.get("format"):
        driver.set("type", disk["format"])
    for key in ("cache", "discard"):
        value = disk.get(key)
        if value is None:
            continue
        if value in ("default", "ignore"):
            driver.attrib.pop(key, None)
        else:
            driver.set(key, value)
    old_encryption = next(iter(dev.iter("encryption")), None)
    if device == "cdrom" or disk.get("path") is not None or disk.get("volume"):
        _source_element(dev, disk.get("path"), disk.get("pool"), None if disk.get("path") else disk.get("volume"))
    if disk.get("encryption") is not None or old_encryption is not None:
        _set_encryption(dev, disk.get("encryption"), old_encryption)
    target = dev.find("target")
    if target is None:
        target = _xml.sub(dev, "target")
    old_bus = target.get("bus")
    target.set("dev", disk["target"])
    target.set("bus", disk["bus"])
    if disk.get("serial") is not None:
        _set_text(dev, "serial", disk["serial"])
    readonly = True if device == "cdrom" else disk.get("readonly")
    if readonly is not None:
        _drop(dev, "readonly")
        if readonly:
            _xml.sub(dev, "readonly")
    if disk.get("boot_order") is not None:
        _boot_element(dev, disk["boot_order"])
    # a disk moved to another bus cannot keep its old bus address
    address = dev.find("address")
    if address is not None and (old_bus not in (None, disk["bus"]) or _address_bus(address) != _address_bus_for(disk["bus"])):
        dev.remove(address)


def _set_encryption(dev, wanted, old):
    """The disk's ``<encryption>``: ``wanted`` ({format, secret: UUID or a volume secret's usage}), or the old
    element kept (a rewritten ``<source>`` drops its children), always inside ``<source>``."""
    for node in list(dev.iter("encryption")):
        node.getparent().remove(node)
    src = dev.find("source")
    if src is None:
        return
    if wanted is None:
        src.append(old)
        return
    src.append(encryption_element(wanted["secret"], wanted.get("format")))


def _address_bus(address):
    return "pci" if address.get("type") == "pci" else address.get("type")


def _address_bus_for(bus):
    return "pci" if bus == "virtio" else ("usb" if bus == "usb" else "drive")


def _set_disks(root, items, device):
    devices = _devices(root)
    existing = dict(
        (_xml.find_attr(d, "target", "dev"), d)
        for d in devices.findall("disk")
        if (d.get("device") or "disk") == device
    )
    wanted = set(item["target"] for item in items)
    for target, node in existing.items():
        if target not in wanted:
            devices.remove(node)
    for item in items:
        node = existing.get(item["target"])
        if node is None:
            node = _xml.element("disk", attrs={"type": "file", "device": device})
            _insert_device(devices, node)
        _fill_disk(node, item, device)


# Device kinds in the order libvirt prints them.
_DEVICE_ORDER = ("emulator", "disk", "controller", "lease", "filesystem", "interface", "smartcard", "serial",
                 "parallel", "console", "channel", "input", "tpm", "graphics", "sound", "audio", "video",
                 "hostdev", "redirdev", "watchdog", "memballoon", "rng", "panic", "shmem", "memory", "iommu",
                 "vsock")


def _insert_device(devices, node):
    return _place(devices, node, _DEVICE_ORDER)


def _set_interfaces(root, items):
    devices = _devices(root)
    existing = devices.findall("interface")
    for node in existing[len(items):]:
        devices.remove(node)
    for index, nic in enumerate(items):
        if index < len(existing):
            node = existing[index]
        else:
            node = _xml.element("interface")
            _insert_device(devices, node)
        _fill_interface(node, nic)


def _fill_interface(node, nic):
    kind = nic.get("type")
    if kind is not None:
        old_kind = node.get("type")
        node.set("type", kind)
        src = node.find("source")
        if src is None or old_kind != kind:
            _drop(node, "source")
            src = _xml.element("source")
            mac = node.find("mac")
            if mac is not None:
                mac.addnext(src)
            else:
                node.insert(0, src)
        src.attrib.clear()
        src.set({"network": "network", "bridge": "bridge", "direct": "dev"}[kind], nic["source"])
        if kind == "direct":
            src.set("mode", nic.get("mode") or "bridge")
    if nic.get("mac"):
        mac = node.find("mac")
        if mac is None:
            mac = _xml.element("mac")
            node.insert(0, mac)
        mac.set("address", nic["mac"])
    if nic.get("model") or node.find("model") is None:
        model = node.find("model")
        if model is None:
            model = _xml.sub(node, "model")
        model.set("type", nic.get("model") or "virtio")
    if nic.get("boot_order") is not None:
        _boot_element(node, nic["boot_order"])
    if nic.get("filter") is not None:
        set_filterref(node, nic["filter"])


def set_filterref(node, ref):
    """The interface ``node``'s ``<filterref>`` as ``ref`` says (``name`` '' removes it)."""
    _drop(node, "filterref")
    if ref.get("name"):
        found = _xml.sub(node, "filterref", attrs={"filter": ref["name"]})
        for item in ref.get("parameters") or ():
            name, _sep, value = item.partition("=")
            _xml.sub(found, "parameter", attrs=dict(name=name, value=value))


def _set_graphics(root, graphics):
    if not graphics:
        return
    devices = _devices(root)
    if graphics["type"] == "none":
        _drop(devices, "graphics")
        return
    node = devices.find("graphics")
    kind = graphics.get("type") or (node.get("type") if node is not None else "vnc")
    if node is None or node.get("type") != kind:
        _drop(devices, "graphics")
        node = _xml.element("graphics", attrs={"type": kind})
        _insert_device(devices, node)
        node.set("autoport", "yes")
        _xml.sub(node, "listen", attrs={"type": "address", "address": graphics.get("listen") or "127.0.0.1"})
    if graphics.get("port") is not None:
        if graphics["port"] == -1:
            node.set("autoport", "yes")
            node.attrib.pop("port", None)
        else:
            node.set("autoport", "no")
            node.set("port", str(graphics["port"]))
    if graphics.get("listen"):
        node.attrib.pop("listen", None)
        _drop(node, "listen")
        _xml.sub(node, "listen", attrs={"type": "address", "address": graphics["listen"]})
    if graphics.get("password") is not None:
        if graphics["password"]:
            node.set("passwd", graphics["password"])
        else:
            node.attrib.pop("passwd", None)


def _set_serial(root, serial):
    if not serial:
        return
    devices = _devices(root)
    current = _serial_model(root)
    if current == dict(type=serial["type"], path=serial.get("path")):
        return
    _drop(devices, "serial")
    _drop(devices, "console")
    node = _xml.element("serial", attrs={"type": serial["type"]})
    if serial["type"] == "file":
        _xml.sub(node, "source", attrs={"path": serial["path"], "append": "on"})
    _xml.sub(node, "target", attrs={"port": 0})
    _insert_device(devices, node)
    console = _xml.element("console", attrs={"type": serial["type"]})
    if serial["type"] == "file":
        _xml.sub(console, "source", attrs={"path": serial["path"], "append": "on"})
    _xml.sub(console, "target", attrs={"type": "serial", "port": 0})
    _insert_device(devices, console)


def _set_agent(root, enabled):
    if enabled is None:
        return
    devices = _devices(root)
    channels = [c for c in devices.findall("channel") if _xml.find_attr(c, "target", "name") == "org.qemu.guest_agent.0"]
    if enabled and not channels:
        node = _xml.element("channel", attrs={"type": "unix"})
        _xml.sub(node, "target", attrs={"type": "virtio", "name": "org.qemu.guest_agent.0"})
        _insert_device(devices, node)
    elif not enabled:
        for node in channels:
            devices.remove(node)


def _set_rng(root, enabled):
    if enabled is None:
        return
    devices = _devices(root)
    if enabled and devices.find("rng") is None:
        node = _xml.element("rng", attrs={"model": "virtio"})
        _xml.sub(node, "backend", "/dev/urandom", attrs={"model": "random"})
        _insert_device(devices, node)
    elif not enabled:
        _drop(devices, "rng")


def _set_watchdog(root, watchdog):
    if watchdog is None:
        return
    devices = _devices(root)
    node = devices.find("watchdog")
    model = watchdog.get("model") or (node.get("model") if node is not None else "i6300esb")
    if node is not None and node.get("model") != model:
        devices.remove(node)
        node = None
    if node is None:
        node = _xml.element("watchdog", attrs={"action": "reset"})
        _insert_device(devices, node)
    node.set("model", model)
    if watchdog.get("action"):
        node.set("action", watchdog["action"])


def _set_hostdevs(root, hostdevs):
    if hostdevs is None:
        return
    devices = _devices(root)
    existing = dict((_hostdev_address(h), h) for h in devices.findall("hostdev[@type='pci']"))
    for address, node in existing.items():
        if address not in hostdevs:
            devices.remove(node)
    for address in hostdevs:
        if address in existing:
            continue
        dom, rest = address.split(":", 1)
        bus, rest = rest.split(":")
        slot, function = rest.split(".")
        node = _xml.element("hostdev", attrs={"mode": "subsystem", "type": "pci", "managed": "yes"})
        src = _xml.sub(node, "source")
        _xml.sub(src, "address", attrs={"domain": "0x" + dom, "bus": "0x" + bus, "slot": "0x" + slot,
                                        "function": "0x" + function})
        _insert_device(devices, node)


def _ensure_scsi_controller(root):
    devices = _devices(root)
    if devices.find("controller[@type='scsi']") is None:  # libvirt refuses a second one with index 0
        _insert_device(devices, _xml.element("controller", attrs={"type": "scsi", "index": 0, "model": "virtio-scsi"}))
