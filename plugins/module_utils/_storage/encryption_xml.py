# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``<encryption>`` element of volumes and VM disks (LUKS with a libvirt secret), written and read;
shared by ``volume`` (new encrypted volumes), ``volume_view`` and the VM model (``disks[].encryption``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_uuid(text):
    return bool(_UUID.match(text or ""))


def encryption_element(secret, fmt="luks"):
    """``<encryption format='luks'><secret type='passphrase' uuid='...'/></encryption>`` (``usage=`` when
    ``secret`` is not a UUID: the usage of a volume secret)."""
    node = _xml.element("encryption", attrs={"format": fmt or "luks"})
    _xml.sub(node, "secret", attrs={"type": "passphrase", "uuid" if is_uuid(secret) else "usage": secret})
    return node


def encryption_of(root):
    """``{format, secret}`` of a volume or disk XML element's ``<encryption>`` (anywhere below), or None."""
    node = next(iter(root.iter("encryption")), None)
    if node is None:
        return None
    secret = node.find("secret")
    return dict(format=node.get("format"), secret=(secret.get("uuid") or secret.get("usage")) if secret is not None else None)
