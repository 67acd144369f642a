# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The DHCP leases of a network (what the ``vm`` module and ``network_info`` report as addresses)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt


def dhcp_leases(network):
    """The DHCP leases of an active network (None where the driver cannot tell)."""
    if not network.isActive():
        return []
    try:
        leases = network.DHCPLeases()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
            return None
        raise
    out = []
    for lease in leases or ():
        out.append(dict(
            mac=(lease.get("mac") or "").lower() or None,
            ip=lease.get("ipaddr"),
            prefix=lease.get("prefix"),
            hostname=lease.get("hostname"),
            client_id=lease.get("clientid"),
            expiry_time=lease.get("expirytime"),
            interface=lease.get("iface"),
        ))
    return out
