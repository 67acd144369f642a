# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``pool`` and ``volume`` of disks and CD-ROMs: which storage pool volume a device's file is.

``vm`` writes disks by their file (``<source file=...>``), and users give disks by path, so the
definition rarely names a pool.  libvirt knows which pool volume has a path
(``storageVolLookupByPath``): ``vm``, ``vm_info`` and the inventory plugin all fill the two keys
from it, so the three report the same names.  A file of no pool keeps ``None`` in both.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt


class VolumeNames:
    """Path -> ``(pool, volume)`` through one connection, each path asked once."""

    def __init__(self, conn, known=None):
        self.conn = conn
        self._cache = dict(known or {})

    def lookup(self, path):
        if path not in self._cache:
            try:
                vol = self.conn.storageVolLookupByPath(path)
                self._cache[path] = (vol.storagePoolLookupByVolume().name(), vol.name())
            except libvirt.libvirtError:
                self._cache[path] = (None, None)
        return self._cache[path]

    def fill(self, devices):
        """Set ``pool``/``volume`` of each device dict (in place) that has a path and names no volume."""
        for dev in devices or ():
            if dev.get("volume") or not dev.get("path"):
                continue
            dev["pool"], dev["volume"] = self.lookup(dev["path"])
        return devices


def fill_volume_names(conn, model, known=None):
    """Fill ``pool``/``volume`` of the disks and CD-ROMs of a domain model (in place); returns it."""
    names = VolumeNames(conn, known)
    for key in ("disks", "cdroms"):
        names.fill(model.get(key))
    return model
