# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``vm`` module, declared once (:class:`._core.kind.Kind`) from its option table (:mod:`.options`)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.kind import Kind
from ansible_collections.virtops.libvirt.plugins.module_utils._core.secrets import vm_secrets
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.options import MUTUALLY_EXCLUSIVE, REQUIRED_BY, vm_argument_spec
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.vm import VmResource

VM = Kind("vm", vm_argument_spec(), VmResource, secrets=vm_secrets,
          mutually_exclusive=MUTUALLY_EXCLUSIVE, required_by=REQUIRED_BY)
