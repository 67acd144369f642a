# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``vm_import``: the definition of the imported VM: an archive's domain XML rebuilt for this host
(:func:`rewrite_domain_xml`, :func:`archive_xml`), or ``vm`` parameters made from an OVF's hardware
or from bare disk images (:func:`model_params`)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import codec_write as _codec_write
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import normalize as _normalize

from ansible_collections.virtops.libvirt.plugins.module_utils._import import domain_xml as _import_xml

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_network
from ansible_collections.virtops.libvirt.plugins.module_utils._host.capabilities import guest_facts, host_capabilities, kvm_usable

_NIC_FALLBACK = "e1000"


def rewrite_domain_xml(text, name, keep_uuid, disks, network=None, virt_type=None, nic_model=None):
    """The archived domain XML made fit for this host.

    The definition is rebuilt from an allow-list (:func:`_import_xml.rebuild`): what names files,
    devices or sockets of a host or passes raw arguments to QEMU is left out (with a note) or
    refused; the firmware is kept through this host's firmware auto-selection.  ``disks``: target
    -> dict(path, format); each disk of the XML is pointed at its new volume, and disks not in it
    are dropped (with a note).  Without ``keep_uuid`` the UUID and every MAC address go (libvirt
    makes new ones); ``network`` moves every interface to that network.
    Returns (xml text, list of notes).
    """
    rebuilt = _import_xml.rebuild(text, network)
    root, notes = rebuilt.root, list(rebuilt.notes)
    name_node = root.find("name")
    if name_node is None:
        name_node = _xml.element("name")
        root.insert(0, name_node)
    name_node.text = name
    if not keep_uuid:
        for path in ("uuid", "devices/interface/mac"):
            for node in root.findall(path):
                node.getparent().remove(node)
    old_sources = dict((d["target"], d["source"]) for d in rebuilt.disks)
    model = _domain.model_from_xml(root)
    kept = []
    for disk in model["disks"]:
        new = disks.get(disk["target"])
        if new is None:
            notes.append("disk %s (%s) of the archived VM is not in the archive: left out"
                         % (disk["target"], old_sources.get(disk["target"]) or "no source"))
            continue
        kept.append(dict(disk, path=new["path"], format=new["format"], pool=None, volume=None))
    missing = sorted(set(disks) - set(d["target"] for d in model["disks"]))
    if missing:
        raise InvalidInputError("the archive holds disk(s) %s that its domain XML does not have" % ", ".join(missing))
    update = dict(disks=kept, firmware=rebuilt.firmware, secure_boot=rebuilt.secure_boot)
    if network:
        update["interfaces"] = [dict(type="network", source=network, model=nic_model) for _n in model["interfaces"]]
    elif nic_model:
        update["interfaces"] = [dict(type=None, source=None, model=nic_model) for _n in model["interfaces"]]
    if virt_type:
        update["virt_type"] = virt_type
    _codec_write.apply_model(root, update)
    return _xml.to_string(root), notes


def virt_type_for(conn, wanted):
    """``virt_type`` on this host: ``wanted``, or for ``auto`` kvm where KVM is usable, else qemu."""
    wanted = wanted or "auto"
    if wanted != "auto":
        return wanted
    caps = host_capabilities(conn)
    arches = guest_facts(caps)[0]
    return "kvm" if kvm_usable(conn, _xml.find_text(caps, "host/cpu/arch"), arches) else "qemu"


def archive_xml(ctx, name, src, volumes):
    """The definition of a VM imported from an archive of this collection (see :func:`rewrite_domain_xml`)."""
    p = ctx.params
    root = _xml.parse(src.domain_xml, "the archived domain XML")
    archived_uuid = _xml.find_text(root, "uuid")
    keep = name == src.name and archived_uuid is not None
    if keep:
        other = None
        try:
            other = ctx.conn.lookupByUUIDString(archived_uuid)
        except libvirt.libvirtError:
            other = None
        if other is not None and other.name() != name:
            keep = False
            ctx.warn("UUID %s is used by VM %s on this host: the imported VM gets a new UUID and new MAC addresses"
                     % (archived_uuid, other.name()))
    virt_type = p.get("virt_type")
    if virt_type in (None, "auto") and root.get("type") == "kvm" and virt_type_for(ctx.conn, p.get("virt_type")) != "kvm":
        virt_type = "qemu"
        ctx.warn("KVM is not usable on this host: the imported VM runs with virt_type qemu (emulation)")
    disks = dict((v["target"], dict(path=v["path"], format=v["format"])) for v in volumes)
    text, notes = rewrite_domain_xml(src.domain_xml, name, keep, disks, network=p.get("network"),
                                     virt_type=virt_type if virt_type not in (None, "auto") else None,
                                     nic_model=p.get("nic_model"))
    for note in notes:
        ctx.warn(note)
    root = _xml.parse(text)
    override = dict(vcpus=p.get("vcpus"), memory=_normalize.memory_mib(p.get("memory"), "memory"))
    if any(v is not None for v in override.values()):
        _codec_write.apply_model(root, override)
    if not p.get("network"):
        _check_networks(ctx, root)
    return _xml.to_string(root)


def _network_missing(conn, name):
    return find_network(conn, name) is None


def _check_networks(ctx, root):
    for nic in root.findall("devices/interface[@type='network']"):
        net = _xml.find_attr(nic, "source", "network")
        if net and _network_missing(ctx.conn, net):
            ctx.assume(NotFoundError("the imported VM uses libvirt network %r, which does not exist here: give "
                                     "network" % net))


def model_params(ctx, src, volumes):
    """The ``vm`` parameters of a VM imported from an OVA, an OVF or bare disk images."""
    p = ctx.params
    hw = src.hardware or {}
    disks = [dict(target=v["target"], bus=v["disk"]["bus"] or "virtio", path=v["path"], format=v["format"],
                  **(dict(pool=v["pool"], volume=v["volume"]) if v["path"] is None else {}))  # check mode, no pool
             for v in volumes]
    interfaces = []
    if src.kind == "disks":
        if p.get("network"):
            interfaces.append(dict(network=p["network"], model=p.get("nic_model") or "virtio"))
    else:
        for nic in hw.get("nics") or []:
            network = p.get("network") or nic.get("network")
            if not network:
                continue
            if not p.get("network") and _network_missing(ctx.conn, network):
                ctx.assume(NotFoundError("the OVF connects a NIC to network %r, which is not a libvirt network "
                                         "here: give network" % network))
            model = p.get("nic_model") or nic.get("model")
            if model not in _domain.INTERFACE_MODELS:
                if model:
                    ctx.warn("NIC model %s is not available: the imported NIC is an %s" % (model, _NIC_FALLBACK))
                model = _NIC_FALLBACK if model else "virtio"
            interfaces.append(dict(network=network, model=model))
    firmware = p.get("firmware") or hw.get("firmware") or "bios"
    vcpus = p.get("vcpus") or hw.get("vcpus") or 1
    memory = p.get("memory") or hw.get("memory_mib") or 1024
    params = dict(vcpus=vcpus, memory=memory, firmware=firmware, machine=p.get("machine"),
                  virt_type=p.get("virt_type") or "auto", disks=disks, interfaces=interfaces)
    if hw.get("os_hint"):
        params["description"] = "imported from %s (OS: %s)" % (os.path.basename(src.path or ""), hw["os_hint"])
    return params
