# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``pool`` module, declared once (:class:`._core.kind.Kind`)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.kind import Kind
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.pool import PoolResource

POOL_ARGUMENT_SPEC = dict(
    COMMON_ARGS,
    name=dict(type="str", required=True),
    state=dict(type="str", default="active", choices=["present", "active", "inactive", "absent"]),
    type=dict(type="str", choices=["dir", "fs", "netfs", "logical", "iscsi", "rbd"]),
    path=dict(type="path"),
    source=dict(type="dict", options=dict(
        devices=dict(type="list", elements="str"),
        host=dict(type="str"),
        dir=dict(type="str"),
        name=dict(type="str"),
        format=dict(type="str"),
        port=dict(type="int"),
        iqn=dict(type="str"),
        initiator=dict(type="str"),
    )),
    permissions=dict(type="dict", options=dict(
        owner=dict(type="int"),
        group=dict(type="int"),
        mode=dict(type="str"),
    )),
    auth=dict(type="dict", options=dict(
        username=dict(type="str", required=True),
        secret=dict(type="str", required=True, no_log=False),
    )),
    xml=dict(type="str"),
    autostart=dict(type="bool"),
    build=dict(type="bool", default=True),
    restart=dict(type="bool", default=False),
    purge=dict(type="bool", default=False),
    force=dict(type="bool", default=False),
)

POOL = Kind(
    "pool", POOL_ARGUMENT_SPEC, PoolResource,
    mutually_exclusive=[("xml", "type"), ("xml", "path"), ("xml", "source"), ("xml", "permissions"), ("xml", "auth")],
)
