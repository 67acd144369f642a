# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``backup_restore`` module, declared once (:class:`._core.kind.Kind`)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._backup.restore import RestoreResource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.kind import Kind

RESTORE_ARGUMENT_SPEC = dict(
    COMMON_ARGS,
    repository=dict(type="path", required=True),
    vm=dict(type="str", required=True),
    point=dict(type="str"),
    before=dict(type="str"),
    name=dict(type="str"),
    pool=dict(type="str", default="default"),
    disk_format=dict(type="str", choices=["qcow2", "raw"]),
    state=dict(type="str", default="present", choices=["present", "running"]),
    force=dict(type="bool", default=False),
    tmp_dir=dict(type="path"),
)

BACKUP_RESTORE = Kind("backup_restore", RESTORE_ARGUMENT_SPEC, RestoreResource,
                      mutually_exclusive=[("point", "before")])
