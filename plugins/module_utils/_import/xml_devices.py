# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The allow-list for archived domain XML (see :mod:`._import.domain_xml`): :data:`DOMAIN`, and the
handlers of what is converted or checked rather than copied (OS and firmware, disks, interfaces,
consoles and channels, graphics, inputs, TPM, rng, audio, watchdog, emulator, security labels)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._import.xml_rules import (
    ALLOWED_INPUTS,
    CHAR_TARGET,
    CLOCK,
    COMMON,
    CONFINEMENT,
    CONTROLLER,
    CPU,
    DISK,
    FEATURES,
    GA_CHANNEL,
    GRAPHICS_COMMON,
    HOST_PATH,
    INTERFACE,
    KEYMAP,
    LIBOSINFO_NS,
    LOOPBACK,
    NIC_FALLBACK,
    NIC_MODELS,
    NOT_ALLOWED,
    NUMBER,
    SPICE_CHANNEL,
    SPICE_CHILDREN,
    SYSINFO,
    VIDEO,
    VIRTIO_DRIVER,
    WATCHDOG_ACTIONS,
    AnyTag,
    Spec,
    first_path,
    flags_leaf,
    join_path,
    leaf,
    number_leaf,
    only_if,
    show,
    text_leaf,
    with_common,
)


def _metadata(builder, node, path):
    """Only the collection's own tags/meta and libosinfo's OS id; other applications' data is left out."""
    out = _xml.element("metadata")
    for child in node:
        if not isinstance(child.tag, str):
            continue
        if child.tag == "{%s}vm" % _xml.VIRTOPS_NS:
            out.append(_copy_virtops_meta(child))
        elif child.tag == "{%s}libosinfo" % LIBOSINFO_NS:
            os_node = child.find("{%s}os" % LIBOSINFO_NS)
            if os_node is not None and os_node.get("id"):
                info = _xml.etree.SubElement(out, child.tag, nsmap={"libosinfo": LIBOSINFO_NS})
                _xml.etree.SubElement(info, os_node.tag).set("id", os_node.get("id"))
        else:
            builder.left_out(child, join_path(path, "metadata"), "it is another application's metadata")
    return out if len(out) else None


def _copy_virtops_meta(node):
    ns = "{%s}" % _xml.VIRTOPS_NS
    out = _xml.etree.Element(ns + "vm", nsmap={"virtops": _xml.VIRTOPS_NS})
    tags = _xml.etree.SubElement(out, ns + "tags")
    for tag in node.findall("%stags/%stag" % (ns, ns)):
        if tag.text:
            _xml.etree.SubElement(tags, ns + "tag").text = tag.text
    for meta in node.findall(ns + "meta"):
        if meta.get("key"):
            item = _xml.etree.SubElement(out, ns + "meta")
            item.set("key", meta.get("key"))
            item.text = meta.text or ""
    return out


def _os(builder, node, path):
    if (_xml.find_text(node, "type") or "hvm") != "hvm":
        raise InvalidInputError("the archived domain XML has OS type %r: only hvm guests can be imported"
                                % _xml.find_text(node, "type"))
    out = builder.copy(node, Spec(children=dict(
        type=text_leaf("arch machine"), boot=leaf("dev"), bootmenu=leaf("enable timeout"),
        bios=leaf("useserial rebootTimeout"),
        smbios=only_if("mode", ("emulate", "sysinfo"), leaf("mode"), "it copies the host's SMBIOS data into the guest"),
    )), path, quiet=("firmware", "loader", "nvram"))
    loader = node.find("loader")
    efi = node.get("firmware") == "efi" or (loader is not None and loader.get("type") == "pflash")
    if loader is not None and not efi and (loader.text or "").strip():
        builder.left_out(loader, join_path(path, "os"), HOST_PATH)
    return out


def _disk(builder, node, path):
    device = node.get("device") or "disk"
    if device == "lun":
        builder.left_out(node, path, "it passes a block device of the old host through")
        return None
    if device not in ("disk", "cdrom", "floppy"):
        builder.left_out(node, path, NOT_ALLOWED)
        return None
    target = _xml.find_attr(node, "target", "dev")
    if target is None:
        builder.left_out(node, path, "it has no target")
        return None
    key = (device == "disk", target)
    if key in builder.disk_targets:
        raise InvalidInputError("the archived domain XML has two %s with target %s" % (
            "disks" if device == "disk" else "drives", target))
    builder.disk_targets.add(key)
    out = builder.copy(node, DISK, path, quiet=("type", "source", "backingStore"))
    out.set("type", "file")
    if device == "disk":
        builder.disks.append(dict(target=target, source=_describe_source(node)))
    elif node.find("source") is not None and _describe_source(node):
        builder.note("%s %s was emptied (it held %s of the old host)" % (
            "CD-ROM" if device == "cdrom" else "floppy", target, _describe_source(node)))
    return out


def _describe_source(node):
    src = node.find("source")
    if src is None:
        return None
    for attr in ("file", "dev", "dir", "volume", "name"):
        if src.get(attr):
            value = src.get(attr)
            if attr == "volume" and src.get("pool"):
                value = "%s/%s" % (src.get("pool"), value)
            return show(value)
    return "a %s source" % (node.get("type") or "disk")


def _interface(builder, node, path):
    kind = node.get("type")
    if builder.network:
        quiet = ("type", "source", "virtualport", "vlan", "target")
    elif kind in ("network", "bridge"):
        quiet = ("type", "source", "target")
    else:
        raise InvalidInputError(
            "interface %d of the archived VM is of type %s%s, which an import does not keep (only libvirt networks "
            "and bridges): give network to connect the imported VM's interfaces to a libvirt network"
            % (builder.nics + 1, show(kind), _source_hint(node)))
    builder.nics += 1
    out = builder.copy(node, INTERFACE, path, quiet=quiet)
    target = node.find("target")
    if target is not None and not re.match(r"^(vnet|macvtap|macvlan)[0-9]+$", target.get("dev") or "vnet0"):
        builder.left_out(target, join_path(path, "interface"), "it names a network device of the host")
    if builder.network:
        kind, kept = "network", dict(network=builder.network)
    else:
        src = node.find("source")
        attrs = dict(network=("network", "portgroup"), bridge=("bridge",))[kind]
        kept = dict((a, src.get(a)) for a in attrs if src is not None and src.get(a))
    out.set("type", kind)
    mac = out.find("mac")
    if mac is not None:
        mac.addnext(_xml.element("source", attrs=kept))
    else:
        out.insert(0, _xml.element("source", attrs=kept))
    model = out.find("model")
    if model is not None and model.get("type") not in NIC_MODELS:
        builder.note("NIC model %s is not kept: the imported NIC is an %s" % (show(model.get("type")), NIC_FALLBACK))
        model.set("type", NIC_FALLBACK)
    return out


def _source_hint(node):
    src = node.find("source")
    if src is None:
        return ""
    for attr in ("dev", "path", "bridge", "network", "address"):
        if src.get(attr):
            return " (%s %s)" % (attr, show(src.get(attr)))
    return ""


def _chardev(builder, node, path):
    """``<serial>``/``<console>``: kept as a pty (QEMU's end is a pseudo terminal libvirt makes)."""
    kind = node.get("type")
    out = builder.copy(node, Spec(children=with_common(COMMON, target=CHAR_TARGET)), path,
                       quiet=("type", "tty", "source", "protocol", "log"))
    out.set("type", "pty")
    if kind != "pty":
        builder.note("the archived domain XML's %s %s became a pty: the old one was of type %s%s" % (
            node.tag, _port(node), show(kind), _named(node)))
    elif node.find("source") is not None and node.find("source").get("path"):
        builder.left_out(node.find("source"), join_path(path, node.tag), HOST_PATH)
    if node.find("log") is not None:
        builder.left_out(node.find("log"), join_path(path, node.tag), HOST_PATH)
    return out


def _port(node):
    port = _xml.find_attr(node, "target", "port")
    return port if port is not None else "0"


def _named(node):
    found = first_path(node)
    return " naming %s" % found if found else ""


def _channel(builder, node, path):
    kind, name = node.get("type"), _xml.find_attr(node, "target", "name")
    if (kind, name) not in (("unix", GA_CHANNEL), ("spicevmc", SPICE_CHANNEL)):
        builder.left_out(node, path, HOST_PATH if first_path(node) else NOT_ALLOWED)
        return None
    out = builder.copy(node, Spec(values=dict(type=(kind,)), children=with_common(COMMON, target=leaf("type name"))),
                       path, quiet=("source",))
    src = node.find("source")
    if src is not None and src.get("path"):
        builder.left_out(src, join_path(path, "channel"), HOST_PATH)
    return out


def _graphics(builder, node, path):
    kind = node.get("type")
    if kind not in ("vnc", "spice"):
        builder.left_out(node, path, HOST_PATH if first_path(node) else NOT_ALLOWED)
        return None
    attrs = GRAPHICS_COMMON + (" websocket sharePolicy powerControl" if kind == "vnc" else " tlsPort defaultMode")
    children = dict(SPICE_CHILDREN) if kind == "spice" else {}
    children["audio"] = leaf("id")
    out = builder.copy(node, Spec("type " + attrs, children=children), path, quiet=("listen",))
    keymap = out.get("keymap")
    if keymap is not None and not KEYMAP.match(keymap):
        del out.attrib["keymap"]
        builder.note("the archived domain XML's %s/graphics keymap=%s was left out: %s" % (path, show(keymap), NOT_ALLOWED))
    listens = [node.get("listen")] + [n.get("address") or n.get("socket") or n.get("network") or n.get("type")
                                      for n in node.findall("listen")]
    outside = []
    for address in listens:
        if address and address not in LOOPBACK + ("address", "none") + tuple(outside):
            outside.append(address)
    if any(n.get("type") == "none" for n in node.findall("listen")) and not outside:
        _xml.sub(out, "listen", attrs={"type": "none"})
        return out
    out.set("listen", "127.0.0.1")
    out.insert(0, _xml.element("listen", attrs={"type": "address", "address": "127.0.0.1"}))
    if outside:
        builder.note("the %s console listened on %s; it listens on 127.0.0.1 (set graphics.listen with the vm module "
                     "to change that)" % (kind, ", ".join(show(a) for a in outside)))
    return out


def _input(builder, node, path):
    if node.get("type") not in ALLOWED_INPUTS:
        builder.left_out(node, path, HOST_PATH if first_path(node) else NOT_ALLOWED)
        return None
    return builder.copy(node, Spec("type bus model", children=with_common(COMMON, driver=leaf(VIRTIO_DRIVER))), path)


def _tpm(builder, node, path):
    backend = node.find("backend")
    if backend is None or backend.get("type") != "emulator":
        builder.left_out(node, path, "it passes the host's TPM through" if backend is not None else NOT_ALLOWED)
        return None
    out = builder.copy(node, Spec("model", children=with_common(COMMON, backend=Spec(
        "type version", values=dict(type=("emulator",)), children=dict(active_pcr_banks=Spec(children=AnyTag(leaf())))
    ))), path)
    builder.note("the TPM is a new, empty emulated one: the old TPM's state is not in the archive")
    return out


def _rng(builder, node, path):
    backend = node.find("backend")
    out = builder.copy(node, Spec("model", values=dict(model=("virtio", "virtio-transitional", "virtio-non-transitional")),
                                  children=with_common(COMMON, rate=leaf("period bytes"), driver=leaf(VIRTIO_DRIVER))),
                       path, quiet=("backend",))
    if out.get("model") is None:
        return None
    old = (backend.get("model"), (backend.text or "").strip()) if backend is not None else (None, None)
    if old not in (("random", "/dev/urandom"), ("random", "/dev/random")):
        builder.note("the random number generator reads this host's /dev/urandom (the old one %s)" % (
            "read %s" % show(old[1]) if old[0] == "random" else "had a backend of model %s" % show(old[0])))
    _xml.sub(out, "backend", "/dev/urandom", attrs={"model": "random"})
    return out


def _audio(builder, node, path):
    if node.get("type") not in ("none", "spice"):
        builder.left_out(node, path, HOST_PATH)
        return None
    out = builder.copy(node, Spec("id type timerPeriod"), path)
    if out.get("id"):
        builder.audio_ids.add(out.get("id"))
    return out


def _watchdog(builder, node, path):
    return builder.copy(node, Spec("model", values=dict(action=WATCHDOG_ACTIONS), children=COMMON), path)


def _emulator(builder, node, path):
    binary = (node.text or "").strip().rsplit("/", 1)[-1]
    if not re.match(r"^(qemu-system-[a-z0-9_]+|qemu-kvm|kvm)$", binary):
        builder.left_out(node, path, HOST_PATH)
    return None  # this host's own emulator is used


def _seclabel(builder, node, path):
    if node.get("type") == "dynamic" and node.get("relabel") in (None, "yes") and len(node) == 0:
        return None  # the host's default
    builder.left_out(node, path, CONFINEMENT)
    return None


def _resource(builder, node, path):
    if [c.tag for c in node] != ["partition"] or _xml.find_text(node, "partition") != "/machine":
        builder.left_out(node, path, HOST_PATH)
    return None


def _refuse_launch_security(builder, node, path):
    raise InvalidInputError("the archived domain XML has <launchSecurity type=%s> (memory encryption): importing it "
                            "without would expose the guest's memory, and a guest key cannot move between hosts; "
                            "refused" % show(node.get("type")))


_DEVICES = Spec(single=("watchdog", "memballoon", "iommu"), children=with_common(
    {},
    emulator=_emulator, disk=_disk, controller=CONTROLLER, interface=_interface, input=_input, graphics=_graphics,
    serial=_chardev, console=_chardev, channel=_channel, tpm=_tpm, rng=_rng, audio=_audio, watchdog=_watchdog,
    video=VIDEO,
    sound=Spec("model", children=with_common(COMMON, codec=leaf("type"), audio=leaf("id"))),
    memballoon=Spec("model autodeflate freePageReporting", children=with_common(
        COMMON, stats=leaf("period"), driver=leaf(VIRTIO_DRIVER))),
    panic=Spec("model", children=COMMON),
    iommu=Spec("model", children=with_common(COMMON, driver=leaf("intremap caching_mode eim iotlb aw_bits"))),
    hub=only_if("type", ("usb",), Spec("type", children=COMMON), NOT_ALLOWED),
))

_DOMAIN_CHILDREN = dict(
    name=text_leaf(), uuid=text_leaf(), genid=text_leaf(), title=text_leaf(), description=text_leaf(), metadata=_metadata,
    maxMemory=number_leaf("unit", values=dict(slots=NUMBER)), memory=number_leaf("unit"), currentMemory=number_leaf("unit"),
    vcpu=number_leaf("placement", values=dict(current=NUMBER)), vcpus=Spec(children=dict(vcpu=leaf("id enabled hotpluggable order"))),
    iothreads=number_leaf(), iothreadids=Spec(children=dict(iothread=leaf("id"))), os=_os,
    features=Spec(children=dict((f, flags_leaf()) for f in FEATURES)), cpu=CPU,
    clock=CLOCK, sysinfo=SYSINFO, pm=Spec(children={"suspend-to-mem": leaf("enabled"), "suspend-to-disk": leaf("enabled")}),
    on_poweroff=text_leaf(), on_reboot=text_leaf(), on_crash=text_leaf(), devices=_DEVICES, seclabel=_seclabel,
    resource=_resource, launchSecurity=_refuse_launch_security,
)
#: the allow-list: what of a ``<domain>`` is kept (each top-level element once, but for seclabel)
DOMAIN = Spec(single=tuple(sorted(set(_DOMAIN_CHILDREN) - {"seclabel"})), children=_DOMAIN_CHILDREN)
