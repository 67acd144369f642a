# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``volume`` module, declared once (:class:`._core.kind.Kind`)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.kind import Kind
from ansible_collections.virtops.libvirt.plugins.module_utils._core.secrets import url_secrets
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume import VolumeResource

VOLUME_ARGUMENT_SPEC = dict(
    COMMON_ARGS,
    name=dict(type="str", required=True),
    pool=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    capacity=dict(type="str"),
    format=dict(type="str", choices=["qcow2", "raw"]),
    preallocation=dict(type="str", choices=["off", "metadata", "full"]),
    source=dict(type="str"),
    source_format=dict(type="str", choices=["raw", "qcow2", "vmdk", "vdi", "vhdx", "vpc", "qed"]),
    checksum=dict(type="str"),
    validate_certs=dict(type="bool", default=True),
    timeout=dict(type="int", default=60),
    backing_volume=dict(type="str"),
    clone_from=dict(type="str"),
    allow_shrink=dict(type="bool", default=False),
    force=dict(type="bool", default=False),
    wipe=dict(type="bool", default=False),
    encryption=dict(type="dict", options=dict(
        format=dict(type="str", default="luks", choices=["luks"]),
        secret=dict(type="str", required=True, no_log=False),
    )),
)

VOLUME = Kind(
    "volume", VOLUME_ARGUMENT_SPEC, VolumeResource, secrets=url_secrets,
    mutually_exclusive=[("source", "backing_volume", "clone_from"), ("encryption", "source"), ("encryption", "backing_volume"),
                        ("encryption", "clone_from")],
    required_by=dict(checksum="source", source_format="source"),
)
