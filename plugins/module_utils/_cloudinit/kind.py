# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``cloudinit`` module, declared once (:class:`._core.kind.Kind`): a seed on a file path needs no libvirt."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.options import SEED_ARGUMENT_SPEC
from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.resource import CloudInitResource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.kind import Kind
from ansible_collections.virtops.libvirt.plugins.module_utils._core.secrets import seed_secrets
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.iso import BUILDERS

CLOUDINIT_ARGUMENT_SPEC = dict(
    COMMON_ARGS,
    name=dict(type="str"),
    pool=dict(type="str"),
    path=dict(type="path"),
    mode=dict(type="raw"),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    force=dict(type="bool", default=False),
    iso_builder=dict(type="str", default="auto", choices=["auto"] + list(BUILDERS)),
    **SEED_ARGUMENT_SPEC
)


def on_file(params):
    """Whether the seed is a file on a path (no pool, so no libvirt connection)."""
    return params.get("pool") is None


CLOUDINIT = Kind(
    "cloudinit", CLOUDINIT_ARGUMENT_SPEC, CloudInitResource, secrets=seed_secrets, local=on_file,
    mutually_exclusive=[("path", "pool"), ("path", "name")],
    required_one_of=[("path", "pool")],
    required_together=[("pool", "name")],
    required_by=dict(mode="path"),
)
