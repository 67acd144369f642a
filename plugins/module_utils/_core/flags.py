# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt constants by name, with the value to use where the python binding is older (or absent,
in unit tests and sanity imports).  One place instead of ``getattr(libvirt, "VIR_...", n)`` in each
file."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt


def flag(name, default=0):
    """``libvirt.<name>``, or ``default`` when the binding lacks it (or libvirt is not installed)."""
    if libvirt is None:
        return default
    return getattr(libvirt, name, default)
