# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``secret`` module, declared once (:class:`._core.kind.Kind`)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.kind import Kind
from ansible_collections.virtops.libvirt.plugins.module_utils._secret.model import USAGE_ELEMENTS
from ansible_collections.virtops.libvirt.plugins.module_utils._secret.resource import SecretResource

SECRET_ARGUMENT_SPEC = dict(
    COMMON_ARGS,
    usage_type=dict(type="str", choices=sorted(USAGE_ELEMENTS)),
    usage_id=dict(type="str"),
    uuid=dict(type="str"),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    description=dict(type="str"),
    private=dict(type="bool"),
    ephemeral=dict(type="bool"),
    value=dict(type="str", no_log=True),
    value_encoding=dict(type="str", default="text", choices=["text", "base64"]),
    update_value=dict(type="str", default="when_changed", choices=["when_changed", "always", "on_create"]),
    force=dict(type="bool", default=False),
)

SECRET = Kind(
    "secret", SECRET_ARGUMENT_SPEC, SecretResource,
    required_together=[("usage_type", "usage_id")],
    required_one_of=[("usage_id", "uuid")],
)
