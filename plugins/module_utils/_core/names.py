# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Validation of the names of libvirt objects (pools, networks...), shared by their resources."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError

MAX_NAME_LENGTH = 128
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def validate_object_name(name, kind):
    """Refuse names libvirt would store badly: they become file names under /etc/libvirt (and
    dnsmasq configuration names for networks).  ``kind`` ("pool", "network") goes into messages."""
    if name is None or not isinstance(name, str) or not name.strip():
        raise InvalidInputError("name: a %s name must not be empty" % kind)
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInputError("name: %r is %d characters long; at most %d are allowed" % (name[:20] + "...", len(name), MAX_NAME_LENGTH))
    if "/" in name:
        raise InvalidInputError("name: %r contains '/', which a %s name cannot contain" % (name, kind))
    if CONTROL_CHARS.search(name):
        raise InvalidInputError("name: %r contains control characters" % name)
    if name in (".", "..") or name != name.strip():
        raise InvalidInputError("name: %r is not a usable %s name (no '.', '..', or leading/trailing spaces)" % (name, kind))
    return name
