# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``nwfilter`` module, declared once (:class:`._core.kind.Kind`)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.kind import Kind
from ansible_collections.virtops.libvirt.plugins.module_utils._nwfilter.model import ACTIONS, DIRECTIONS, PROTOCOLS
from ansible_collections.virtops.libvirt.plugins.module_utils._nwfilter.resource import NwFilterResource

NWFILTER_ARGUMENT_SPEC = dict(
    COMMON_ARGS,
    name=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    chain=dict(type="str"),
    priority=dict(type="int"),
    rules=dict(type="list", elements="dict", options=dict(
        direction=dict(type="str", default="inout", choices=list(DIRECTIONS)),
        action=dict(type="str", default="accept", choices=list(ACTIONS)),
        priority=dict(type="int"),
        protocol=dict(type="str", default="all", choices=list(PROTOCOLS)),
        source=dict(type="str"),
        destination=dict(type="str"),
        source_ports=dict(type="str"),
        destination_ports=dict(type="str"),
        state=dict(type="list", elements="str"),
        statematch=dict(type="bool"),
        source_mac=dict(type="str"),
        destination_mac=dict(type="str"),
        protocol_id=dict(type="str"),
        icmp_type=dict(type="str"),
        icmp_code=dict(type="str"),
        attributes=dict(type="dict"),
    )),
    filterrefs=dict(type="list", elements="dict", options=dict(
        filter=dict(type="str", required=True),
        parameters=dict(type="dict"),
    )),
    force=dict(type="bool", default=False),
)

NWFILTER = Kind("nwfilter", NWFILTER_ARGUMENT_SPEC, NwFilterResource)
