# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Timeouts, checked once and the same way in every module: a positive number of seconds.

Zero or a negative number would make a wait end before it began (``shutdown_timeout: 0`` would
report a timeout at once, or power the VM off at once with ``force``), so they are refused with a
message naming the option.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError


def timeout_seconds(value, what, default=None):
    """``value`` (seconds) checked, or ``default`` when it is None; InvalidInputError names ``what``."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InvalidInputError("%s: must be a positive number of seconds, got %r" % (what, value))
    return value


def check_timeouts(params, defaults):
    """``{option: seconds}`` for every option of ``defaults`` (``{option: default}``), each checked."""
    return dict((key, timeout_seconds(params.get(key), key, default)) for key, default in defaults.items())
