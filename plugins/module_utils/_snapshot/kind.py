# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``snapshot`` module, declared once (:class:`._core.kind.Kind`)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.kind import Kind
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot.resource import SnapshotResource
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot.view import REVERT_STATES, STATES

SNAPSHOT_ARGUMENT_SPEC = dict(
    COMMON_ARGS,
    vm=dict(type="str", required=True),
    name=dict(type="str"),
    state=dict(type="str", default="present", choices=list(STATES)),
    description=dict(type="str"),
    memory=dict(type="bool"),
    disk_only=dict(type="bool"),
    quiesce=dict(type="bool", default=False),
    revert_state=dict(type="str", choices=list(REVERT_STATES)),
    children=dict(type="bool", default=False),
    keep_last=dict(type="int"),
    max_age=dict(type="str"),
    retention_pattern=dict(type="str", default="*"),
    prune_current=dict(type="bool", default=False),
)

SNAPSHOT = Kind("snapshot", SNAPSHOT_ARGUMENT_SPEC, SnapshotResource)
