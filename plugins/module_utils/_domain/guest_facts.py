# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Facts from inside a running guest, through its QEMU guest agent: ``vm_info`` with ``guest_info``.

One ``virDomainGetGuestInfo`` call (OS, hostname, timezone, users, filesystems, disks and, with
libvirt 8.5 or later, interfaces) gives libvirt's flat typed parameters (``fs.0.used-bytes``);
:func:`shape_guest_info` makes them lists and dicts (``filesystems[0].used_bytes``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.agent_errors import agent_error

#: libvirt's names of lists -> ours; leaves: hwaddr -> mac, addr -> address
LISTS = {"fs": "filesystems", "if": "interfaces", "user": "users", "disk": "disks", "addr": "addresses"}
LEAVES = {"hwaddr": "mac", "addr": "address"}


def _lists(node):
    """Dicts keyed 0, 1, ... become lists (in index order)."""
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_lists(node[k]) for k in sorted(node, key=int)]
    return dict((k, _lists(v)) for k, v in node.items())


def shape_guest_info(flat):
    """``{'os.name': .., 'fs.0.used-bytes': ..}`` -> ``{'os': {'name': ..}, 'filesystems': [{'used_bytes': ..}]}``."""
    root = {}
    for key, value in flat.items():
        parts = key.split(".")
        if parts[-1] == "count":
            continue
        node = root
        for part in parts[:-1]:
            node = node.setdefault(LISTS.get(part, part) if not part.isdigit() else part, {})
        node[LEAVES.get(parts[-1], parts[-1]).replace("-", "_")] = value
    out = _lists(root)
    for key in ("users", "filesystems", "disks", "interfaces"):
        out.setdefault(key, [])
    out.setdefault("os", {})
    out.setdefault("timezone", None)
    out.setdefault("hostname", None)
    return out


def guest_facts(dom):
    """``(facts, None)`` of running VM ``dom``, or ``(None, why not)``: never raises for an absent agent."""
    try:
        if not dom.isActive():
            return None, "VM '%s' is not running" % dom.name()
        return shape_guest_info(dom.guestInfo(0, 0)), None
    except libvirt.libvirtError as exc:
        return None, agent_error(exc, dom, "reading guest facts")[0].msg
