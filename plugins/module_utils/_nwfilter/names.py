# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Network filter names and filter parameters, checked: what the ``nwfilter`` module and the ``vm``
module's ``interfaces[].filter`` share (the vm module ships this file, not the whole filter model)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.names import validate_object_name

_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def validate_name(name):
    validate_object_name(name, "network filter")
    if not re.match(r"^[A-Za-z0-9_.:-]+$", name):
        raise InvalidInputError("name: %r: a network filter name has only letters, digits, '_', '.', ':' and '-'" % name)
    return name


def normalize_parameters(params, what):
    """``{IP: '10.0.0.5'}`` or ``{IP: ['10.0.0.5', '10.0.0.6']}`` -> ``{IP: ['10.0.0.5', ...]}``."""
    out = {}
    for name, value in (params or {}).items():
        if not _PARAM_NAME.match(str(name)):
            raise InvalidInputError("%s: %r is not a filter parameter name (letters, digits, '_')" % (what, name))
        values = value if isinstance(value, (list, tuple)) else [value]
        values = [str(v) for v in values if v is not None]
        if not values:
            raise InvalidInputError("%s.%s: a parameter needs a value" % (what, name))
        out[str(name)] = values
    return out
