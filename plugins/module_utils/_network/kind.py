# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``network`` module, declared once (:class:`._core.kind.Kind`)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.kind import Kind
from ansible_collections.virtops.libvirt.plugins.module_utils._network.resource import NetworkResource

_RANGE = dict(type="list", elements="dict", options=dict(
    start=dict(type="str", required=True),
    end=dict(type="str", required=True),
))

NETWORK_ARGUMENT_SPEC = dict(
    COMMON_ARGS,
    name=dict(type="str", required=True),
    state=dict(type="str", default="active", choices=["present", "active", "inactive", "absent"]),
    forward_mode=dict(type="str", choices=["nat", "route", "open", "isolated", "bridge"]),
    bridge=dict(type="str"),
    mtu=dict(type="int"),
    domain=dict(type="str"),
    ipv4=dict(type="dict", options=dict(
        address=dict(type="str", required=True),
        prefix=dict(type="int", required=True),
        dhcp_ranges=_RANGE,
        dhcp_hosts=dict(type="list", elements="dict", options=dict(
            mac=dict(type="str", required=True),
            ip=dict(type="str", required=True),
            name=dict(type="str"),
        )),
    )),
    ipv6=dict(type="dict", options=dict(
        address=dict(type="str", required=True),
        prefix=dict(type="int", required=True),
        dhcp_ranges=_RANGE,
    )),
    dns=dict(type="dict", options=dict(
        enabled=dict(type="bool"),
        forwarders=dict(type="list", elements="str"),
        hosts=dict(type="list", elements="dict", options=dict(
            ip=dict(type="str", required=True),
            hostnames=dict(type="list", elements="str", required=True),
        )),
    )),
    xml=dict(type="str"),
    autostart=dict(type="bool"),
    restart=dict(type="bool", default=False),
    force=dict(type="bool", default=False),
    port_forwards=dict(type="list", elements="dict", options=dict(
        protocol=dict(type="str", default="tcp", choices=["tcp", "udp"]),
        host_address=dict(type="str"),
        host_port=dict(type="raw", required=True),
        guest_address=dict(type="str", required=True),
        guest_port=dict(type="raw"),
    )),
)

NETWORK = Kind(
    "network", NETWORK_ARGUMENT_SPEC, NetworkResource,
    mutually_exclusive=[("xml", k) for k in ("forward_mode", "bridge", "mtu", "domain", "ipv4", "ipv6", "dns")],
)
