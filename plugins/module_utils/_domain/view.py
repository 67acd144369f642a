# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the modules return about a VM (``vm``, ``vm_import``, ``vm_info``): its model without
secrets and internals.  Read only: ``vm_info`` imports this file, not the ``vm`` resource.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy


def vm_view(model):
    """What the module returns about a VM: the model without secrets and internals."""
    out = dict((k, copy.deepcopy(v)) for k, v in model.items() if not k.startswith("_") and k not in ("xml", "xml_sha256"))
    graphics = out.get("graphics")
    if isinstance(graphics, dict):
        graphics.pop("password", None)
    for disk in out.get("disks") or []:
        for key in ("backing_volume", "backing_pool"):
            disk.pop(key, None)
    return out
