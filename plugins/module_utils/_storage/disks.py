# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which VM disks name a volume: the domains' ``<disk>`` sources, read once (a resize looks for the
running VM whose disk it grows online; imports and seeds look whether a volume is attached).

The answer to "may this be deleted" is :mod:`.._core.usage`, which counts every kind of use.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors


def disk_users(conn):
    """Every domain disk with a source: dicts domain, active, target, device, path, pool, volume."""
    users = []
    with libvirt_errors("listing domains"):
        domains = conn.listAllDomains(0)
    for dom in domains:
        try:
            text = dom.XMLDesc(0)
            active = bool(dom.isActive())
            name = dom.name()
        except libvirt.libvirtError:  # the domain went away while we looked
            continue
        root = _xml.parse(text, "domain XML")
        for disk in root.findall("devices/disk"):
            src = disk.find("source")
            if src is None:
                continue
            users.append(dict(
                domain=name,
                active=active,
                target=_xml.find_attr(disk, "target", "dev"),
                device=disk.get("device"),
                path=src.get("file") or src.get("dev"),
                pool=src.get("pool"),
                volume=src.get("volume"),
            ))
    return users


def users_of(users, pool_name, vol_name, path):
    return [
        dict(domain=u["domain"], active=u["active"], target=u["target"])
        for u in users
        if (path and u["path"] == path) or (u["pool"] == pool_name and u["volume"] == vol_name)
    ]
