# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``backup`` module, declared once (:class:`._core.kind.Kind`)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._backup.backup import BackupResource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.kind import Kind

BACKUP_ARGUMENT_SPEC = dict(
    COMMON_ARGS,
    vm=dict(type="str", required=True),
    repository=dict(type="path", required=True),
    point=dict(type="str"),
    mode=dict(type="str", default="auto", choices=["auto", "full", "incremental"]),
    full_every=dict(type="int"),
    full_max_age_days=dict(type="int"),
    compression=dict(type="str", default="none", choices=["none", "zstd", "gzip"]),
    quiesce=dict(type="bool", default=False),
    retention=dict(type="dict", options=dict(
        keep_last=dict(type="int"), keep_daily=dict(type="int"), keep_weekly=dict(type="int"),
        keep_monthly=dict(type="int"))),
    state=dict(type="str", default="present", choices=["present", "pruned"]),
    timeout=dict(type="int"),
    progress_file=dict(type="path"),
)

#: ``state=pruned`` only removes directories of the repository: no libvirt connection
BACKUP = Kind("backup", BACKUP_ARGUMENT_SPEC, BackupResource, local=lambda params: params.get("state") == "pruned")
