# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The VM model -> domain XML: :func:`apply_model` writes the specified parts of a model into an
existing definition and keeps everything else (UUID, MAC addresses, PCI addresses, controllers
libvirt added); a new definition (:func:`build_xml`) is :func:`apply_model` on a skeleton, so
there is one writer for both.  The device setters are in ``codec_devices``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import from_libvirt_units
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.codec_devices import (
    _child,
    _devices,
    _drop,
    _ensure_scsi_controller,
    _fill_disk,
    _insert_device,
    _place,
    _set_agent,
    _set_disks,
    _set_graphics,
    _set_hostdevs,
    _set_interfaces,
    _set_rng,
    _set_serial,
    _set_text,
    _set_watchdog,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.shares import apply_shares, needs_shared_memory
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.tuning import apply_tuning, set_shared_memory
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.model import MIB, XML_HASH_ATTR, _firmware_model, _metadata_model

# --- model -> XML -------------------------------------------------------------------------------


def skeleton(name, virt_type, uuid=None):
    root = _xml.element("domain", attrs={"type": virt_type})
    _xml.sub(root, "name", name)
    if uuid:
        _xml.sub(root, "uuid", uuid)
    return root


def _set_memory(root, model):
    if model.get("max_memory") is not None:
        node = _child(root, "memory")
        node.text, node.attrib["unit"] = str(model["max_memory"] * 1024), "KiB"
    if model.get("memory") is not None:
        node = _child(root, "currentMemory")
        node.text, node.attrib["unit"] = str(model["memory"] * 1024), "KiB"
        memory = root.find("memory")
        if memory is None or from_libvirt_units(memory.text, memory.get("unit") or "KiB") < model["memory"] * MIB:
            memory = _child(root, "memory")
            memory.text, memory.attrib["unit"] = str(model["memory"] * 1024), "KiB"


def _set_vcpus(root, model):
    vcpu = root.find("vcpu")
    current_max = int(vcpu.text) if vcpu is not None and vcpu.text else 1
    max_vcpus = model.get("max_vcpus")
    vcpus = model.get("vcpus")
    if max_vcpus is None and vcpus is None:
        return
    vcpu = _child(root, "vcpu")
    if max_vcpus is None:
        max_vcpus = max(current_max, vcpus)
    vcpu.text = str(max_vcpus)
    vcpu.set("placement", vcpu.get("placement") or "static")
    current = vcpus if vcpus is not None else int(vcpu.get("current") or current_max)
    current = min(current, max_vcpus)
    if current < max_vcpus:
        vcpu.set("current", str(current))
    elif "current" in vcpu.attrib:
        del vcpu.attrib["current"]


def _set_cpu(root, cpu):
    if not cpu:
        return
    node = _child(root, "cpu")
    if cpu.get("mode"):
        node.set("mode", cpu["mode"])
        if cpu["mode"] in ("host-passthrough", "maximum"):
            node.set("check", "none")
            node.attrib.pop("match", None)
            _drop(node, "model")
        elif cpu["mode"] == "host-model":
            node.attrib.pop("match", None)
            node.attrib.pop("migratable", None)
            _drop(node, "model")
        else:
            node.set("match", "exact")
            node.attrib.pop("migratable", None)  # libvirt allows it only with host-passthrough and maximum
    if cpu.get("model"):
        model = node.find("model")
        if model is None:
            model = _xml.element("model")
            node.insert(0, model)
        model.text = cpu["model"]
        model.set("fallback", "forbid")
    if cpu.get("sockets") is not None:
        topo = node.find("topology")
        if topo is None:
            topo = _xml.sub(node, "topology")
        for key in ("sockets", "dies", "cores", "threads"):
            topo.attrib.pop(key, None)
        topo.set("sockets", str(cpu["sockets"]))
        topo.set("dies", "1")
        topo.set("cores", str(cpu["cores"]))
        topo.set("threads", str(cpu["threads"]))


_OS_ORDER = ("type", "firmware", "loader", "nvram", "kernel", "initrd", "cmdline", "boot", "bootmenu", "smbios")


def _set_os(root, model):
    os_node = _child(root, "os")
    type_node = os_node.find("type")
    if type_node is None:
        type_node = _xml.element("type", "hvm")
        os_node.insert(0, type_node)
    if model.get("arch"):
        type_node.set("arch", model["arch"])
    if model.get("machine"):
        type_node.set("machine", model["machine"])
    _set_firmware(root, os_node, model)
    for tag in ("kernel", "initrd", "cmdline"):
        value = model.get(tag)
        if value is None:
            continue
        if value == "":
            _drop(os_node, tag)
        else:
            _child(os_node, tag, _OS_ORDER).text = value
    if model.get("boot") is not None:
        _drop(os_node, "boot")
        for dev in model["boot"]:
            _place(os_node, _xml.element("boot", attrs={"dev": dev}), _OS_ORDER)
        if model["boot"]:
            _drop(root, "devices/*/boot")  # libvirt refuses <os><boot> next to per-device <boot order>
    elif any(dev.get("boot_order") for key in ("disks", "cdroms", "interfaces") for dev in model.get(key) or []):
        _drop(os_node, "boot")


def _set_firmware(root, os_node, model):
    firmware, secure = model.get("firmware"), model.get("secure_boot")
    if firmware is None and secure is None and model.get("nvram_template") is None:
        return
    current, current_secure = _firmware_model(os_node)
    firmware = firmware or current
    secure = current_secure if secure is None else secure
    if firmware == "bios":
        os_node.attrib.pop("firmware", None)
        for tag in ("firmware", "loader", "nvram"):
            _drop(os_node, tag)
        return
    if firmware != current or secure != current_secure:
        # Let libvirt pick the OVMF build (firmware auto-selection): it fills <loader>/<nvram>.
        for tag in ("firmware", "loader"):
            _drop(os_node, tag)
        if firmware != current:
            _drop(os_node, "nvram")
        os_node.set("firmware", "efi")
        fw = _child(os_node, "firmware", _OS_ORDER)
        _xml.sub(fw, "feature", attrs={"enabled": secure, "name": "secure-boot"})
        _xml.sub(fw, "feature", attrs={"enabled": secure, "name": "enrolled-keys"})
    if model.get("nvram_template"):
        _child(os_node, "nvram", _OS_ORDER).set("template", model["nvram_template"])
    features = _child(root, "features")
    if secure:
        _child(features, "smm").set("state", "on")
    if features.find("acpi") is None:
        features.insert(0, _xml.element("acpi"))


def metadata_element(tags, metadata, namespaced=True):
    """``<virtops:vm>`` with the tags and key/value metadata.

    ``namespaced=False`` gives the same element without a namespace: what ``setMetadata`` takes
    (libvirt puts it into the namespace it is given).
    """
    ns = "{%s}" % _xml.VIRTOPS_NS if namespaced else ""
    node = _xml.etree.Element(ns + "vm", nsmap={"virtops": _xml.VIRTOPS_NS} if namespaced else None)
    tags_node = _xml.etree.SubElement(node, ns + "tags")
    for tag in tags or []:
        _xml.etree.SubElement(tags_node, ns + "tag").text = tag
    for key in sorted(metadata or {}):
        meta = _xml.etree.SubElement(node, ns + "meta")
        meta.set("key", key)
        meta.text = metadata[key]
    return node


def _set_metadata(root, model):
    if model.get("tags") is None and model.get("metadata") is None:
        return
    tags, meta = _metadata_model(root)
    tags = model["tags"] if model.get("tags") is not None else tags
    meta = model["metadata"] if model.get("metadata") is not None else meta
    container = _child(root, "metadata")
    for old in container.findall("{%s}vm" % _xml.VIRTOPS_NS):
        container.remove(old)
    container.append(metadata_element(tags, meta))


def apply_model(root, model):
    """Write every specified part of ``model`` into the domain element ``root`` (in place)."""
    if model.get("virt_type"):
        root.set("type", model["virt_type"])
    _set_text(root, "title", model.get("title"))
    _set_text(root, "description", model.get("description"))
    _set_metadata(root, model)
    _set_memory(root, model)
    _set_vcpus(root, model)
    _set_os(root, model)
    _set_cpu(root, model.get("cpu"))
    if model.get("disks") is not None:
        _set_disks(root, model["disks"], "disk")
        if any(d["bus"] == "scsi" for d in model["disks"]):
            _ensure_scsi_controller(root)
    if model.get("cdroms") is not None:
        _set_disks(root, model["cdroms"], "cdrom")
        if any(d["bus"] == "scsi" for d in model["cdroms"]):
            _ensure_scsi_controller(root)
    if model.get("interfaces") is not None:
        _set_interfaces(root, model["interfaces"])
    _set_serial(root, model.get("serial"))
    _set_agent(root, model.get("guest_agent"))
    _set_graphics(root, model.get("graphics"))
    _set_hostdevs(root, model.get("hostdevs"))
    _set_watchdog(root, model.get("watchdog"))
    _set_rng(root, model.get("rng"))
    apply_shares(root, model, _devices, _insert_device, _drop)
    apply_tuning(root, model, _child, _place, _drop)
    if needs_shared_memory(model):
        set_shared_memory(root, _child, _place)
    return root


def mark_xml_source(root, digest):
    """Record in the definition ``root`` that it was made from user XML with hash ``digest``."""
    container = _child(root, "metadata")
    node = container.find("{%s}vm" % _xml.VIRTOPS_NS)
    if node is None:
        node = metadata_element([], {})
        container.append(node)
    node.set(XML_HASH_ATTR, digest)
    return root


def build_xml(name, model, uuid=None):
    """A new domain definition: a skeleton with ``model`` applied (defaults already in the model)."""
    root = skeleton(name, model.get("virt_type") or "kvm", uuid)
    apply_model(root, model)
    features = _child(root, "features")
    for tag in ("acpi", "apic"):
        if features.find(tag) is None:
            _xml.sub(features, tag)
    if root.find("devices/memballoon") is None:
        _insert_device(_devices(root), _xml.element("memballoon", attrs={"model": "virtio"}))
    return root


def disk_element(disk, device="disk"):
    """One ``<disk>`` element, as ``attachDevice``/``updateDevice`` take it."""
    node = _xml.element("disk", attrs={"type": "file", "device": device})
    _fill_disk(node, disk, device)
    return node
