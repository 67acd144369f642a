# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``vm_template`` module, declared once (:class:`._core.kind.Kind`)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS
from ansible_collections.virtops.libvirt.plugins.module_utils._core.kind import Kind
from ansible_collections.virtops.libvirt.plugins.module_utils._template.resource import TemplateResource

TEMPLATE_ARGUMENT_SPEC = dict(
    COMMON_ARGS,
    name=dict(type="str", required=True),
    pool=dict(type="str", default="default"),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    vm=dict(type="str"),
    seal=dict(type="bool"),
    seal_timeout=dict(type="int", default=600),
    shutdown_timeout=dict(type="int", default=120),
    force=dict(type="bool", default=False),
)

TEMPLATE = Kind("vm_template", TEMPLATE_ARGUMENT_SPEC, TemplateResource)
