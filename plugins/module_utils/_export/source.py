# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``export``: what is exported: a VM (definition, disks, their backing chains) or one volume, and its identity."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import stat
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain

from ansible_collections.virtops.libvirt.plugins.module_utils._export.overlay import find_leftovers
from ansible_collections.virtops.libvirt.plugins.module_utils._export.params import file_stamp

from ansible_collections.virtops.libvirt.plugins.module_utils._storage import trust as _trust

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import BackendError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_vm, get_vm
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.disks import disk_users
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import (
    backing_chain,
    lookup_pool,
    lookup_volume,
    parse_volume_xml,
    volume_xml,
)

_XML_INACTIVE = flag("VIR_DOMAIN_XML_INACTIVE", 2)


def _without_passwords(root):
    for node in root.xpath("//*[@passwd]"):
        del node.attrib["passwd"]
    return root


def definition_xml(dom):
    """The persistent definition (the live one of a transient VM), never with secrets."""
    with libvirt_errors("reading the definition of VM '%s'" % dom.name()):
        text = dom.XMLDesc(_XML_INACTIVE) if dom.isPersistent() else dom.XMLDesc(0)
    return _xml.to_string(_without_passwords(_xml.parse(text, "domain XML")), pretty=True)


def _os_hint(root):
    """``debian12`` from libosinfo metadata (``http://debian.org/debian/12``), or None."""
    for node in root.iter():
        if isinstance(node.tag, str) and node.tag.endswith("}os") and node.get("id"):
            parts = [p for p in node.get("id").split("/") if p][-2:]
            return "".join(parts) or None
    return None


def _resolve_volume_path(conn, pool_name, vol_name, what):
    with libvirt_errors("%s: looking up volume %r in pool %r" % (what, vol_name, pool_name)):
        pool = conn.storagePoolLookupByName(pool_name)
        return pool.storageVolLookupByName(vol_name).path()


def domain_disks(conn, root, what):
    """The exportable disks (``device='disk'``) of a domain XML, in order: target, bus, path, type,
    format, readonly, shareable.  CD-ROMs, floppies and LUNs are left out; network disks refused."""
    disks = []
    for node in root.findall("devices/disk"):
        if (node.get("device") or "disk") != "disk":
            continue
        target = _xml.find_attr(node, "target", "dev")
        kind = node.get("type") or "file"
        src = node.find("source")
        label = "%s: disk %s" % (what, target)
        if src is None:
            continue  # an empty drive has nothing to export
        if kind == "file":
            path = src.get("file")
        elif kind == "block":
            path = src.get("dev")
        elif kind == "volume":
            path = _resolve_volume_path(conn, src.get("pool"), src.get("volume"), label)
        else:
            raise InvalidInputError("%s is a %s disk: only file, block device and pool volume disks can be exported"
                                    % (label, kind))
        if not path:
            continue
        disks.append(dict(
            target=target,
            bus=_xml.find_attr(node, "target", "bus") or "virtio",
            path=path,
            # what QEMU reads: the definition's driver type, raw without one (libvirt never probes a disk)
            format=_xml.find_attr(node, "driver", "type") or "raw",
            readonly=node.find("readonly") is not None,
            shareable=node.find("shareable") is not None,
        ))
    return disks


def _nics(root):
    nics = []
    for node in root.findall("devices/interface"):
        src = node.find("source")
        network = None
        if src is not None:
            network = src.get("network") or src.get("bridge") or src.get("dev")
        nics.append(dict(network=network, model=_xml.find_attr(node, "model", "type")))
    return nics


def _is_block(path):
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def describe_image(qemu, disk, what):
    """Fill in ``disk`` (needs path, format): virtual size, data bytes, chain of files."""
    path = disk["path"]
    if not os.path.exists(path):
        raise NotFoundError("%s: the image %s is not there on this node: export runs on the hypervisor itself "
                            "(delegate the task to it)" % (what, path))
    chain = qemu.info(path, backing_chain=True, fmt=disk.get("format"))
    if not chain:
        raise BackendError("%s: qemu-img info gave nothing for %s" % (what, path))
    disk["format"] = disk.get("format") or chain[0].get("format")
    disk["virtual_size"] = int(chain[0]["virtual-size"])
    # the qcow2 version: 1.1 (v3) can hold persistent bitmaps, 0.10 (v2) cannot
    disk["compat"] = ((chain[0].get("format-specific") or {}).get("data") or {}).get("compat")
    disk["chain"] = [c.get("filename") for c in chain if c.get("filename")]
    disk["block"] = any(_is_block(p) for p in disk["chain"])
    disk["data"] = qemu.data_bytes(path, disk["format"])
    return disk


def read_vm(conn, name, qemu):
    dom = find_vm(conn, name)
    if dom is None:
        raise NotFoundError("VM '%s' does not exist" % name)
    with libvirt_errors("reading VM '%s'" % name):
        active = bool(dom.isActive())
        state = dom.state()[0]
        uuid = dom.UUIDString()
        live = dom.XMLDesc(0)
    definition = definition_xml(dom)
    def_root = _xml.parse(definition, "domain XML")
    model = _domain.model_from_xml(def_root)
    disk_root = _xml.parse(live, "domain XML") if active else def_root
    disks = domain_disks(conn, disk_root, "VM '%s'" % name)
    leftovers = find_leftovers(qemu, disk_root if active else None, disks, "VM '%s'" % name)
    for disk in disks:
        describe_image(qemu, disk, "VM '%s', disk %s" % (name, disk["target"]))
    return dict(
        kind="vm", name=name, uuid=uuid, dom=dom, active=active, state=state, definition=definition,
        vm=dict(name=name, uuid=uuid, vcpus=model["vcpus"], memory_mib=model["memory"], firmware=model["firmware"],
                arch=model["arch"] or "x86_64"),
        os_hint=_os_hint(def_root), nics=_nics(def_root), disks=disks, leftovers=leftovers,
    )


def read_volume(conn, pool_name, name, qemu, uri=None):
    pool = lookup_pool(conn, pool_name)
    vol = lookup_volume(pool, name)
    if vol is None:
        raise NotFoundError("volume %r does not exist in pool %r" % (name, pool_name))
    model = parse_volume_xml(volume_xml(vol))
    if not model["path"]:
        raise InvalidInputError("volume %r of pool %r has no path to read" % (name, pool_name))
    # the recorded or checked format, never libvirt's probe alone: a raw volume whose guest wrote a qcow2
    # header naming a host file must be read as raw, not through that "backing file"
    trusted = _trust.trusted_volume(conn, uri, model, qemu, "volume %r" % name, chain=lambda: backing_chain(conn, model))
    disk = dict(target=None, bus=None, path=model["path"], format=trusted["format"], readonly=False, shareable=False)
    users = [u for u in disk_users(conn) if u["path"] == model["path"] or (u["pool"] == pool_name and u["volume"] == name)]
    running = [u for u in users if u["active"]]
    source = dict(kind="volume", name=name, pool=pool_name, dom=None, active=False, definition=None, disks=[disk],
                  leftovers=[], users=[u["domain"] for u in users])
    if running:
        user = running[0]
        dom = get_vm(conn, user["domain"])
        root = _xml.parse(dom.XMLDesc(0), "domain XML")
        for live in domain_disks(conn, root, "VM '%s'" % user["domain"]):
            if live["target"] != user["target"]:
                continue
            source["leftovers"] = find_leftovers(qemu, root, [live], "volume %r (disk %s of VM '%s')"
                                                 % (name, live["target"], user["domain"]))
            disk.update(target=live["target"], readonly=live["readonly"], shareable=live["shareable"])
        source.update(dom=dom, active=True, user=user["domain"])
    describe_image(qemu, disk, "volume %r" % name)
    return source


def source_identity(source):
    """``(digest, detail)``: what must not change for an existing export to stay current."""
    disks = []
    volatile = False
    for disk in source["disks"]:
        chain = []
        for path in disk["chain"]:
            if _is_block(path):
                volatile = True
                chain.append([path, "block device"])
            else:
                chain.append([path] + (file_stamp(path) or ["missing"]))
        disks.append(dict(target=disk["target"], format=disk["format"], virtual_size=disk["virtual_size"], chain=chain))
    detail = dict(kind=source["kind"], name=source["name"], disks=disks)
    if source.get("definition") is not None:
        detail["definition_sha256"] = hashlib.sha256(_xml.canonical(source["definition"])).hexdigest()
    digest = hashlib.sha256(json.dumps(detail, sort_keys=True).encode("utf-8")).hexdigest()
    if volatile:
        digest = "volatile:%s:%s" % (digest, time.time())
    return digest, detail
