# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``volume_info``: every volume of a pool, or the one named, with the VMs that use each (the run's
usage answer, :mod:`.._core.usage`: the same one the in-use checks ask)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import refresh_pool
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import usage
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import lookup_pool, lookup_volume, validate_name, volume_facts


def used_by(answer, pool_name, name, path):
    """The VMs that use the volume (by its file or as ``pool``/``volume``), from the run's usage
    answer (:func:`.._core.usage.usage`): dicts domain, active, target, once each."""
    found = []
    for use in answer.uses_of([path], [(pool_name, name)]):
        entry = dict(domain=use["vm"], active=use["active"], target=use["target"])
        if entry not in found:
            found.append(entry)
    return found


def gather_volume_info(ctx):
    """``volume_info``: every volume of a pool, or the one named."""
    pool_name = ctx.params["pool"]
    name = ctx.params.get("name")
    pool = lookup_pool(ctx.conn, pool_name)
    if name is not None:
        validate_name(name)
        vol = lookup_volume(pool, name)
        vols = [vol] if vol is not None else []
    else:
        refresh_pool(pool)
        with libvirt_errors("listing volumes of pool %r" % pool_name):
            vols = pool.listAllVolumes(0)
    answer = usage(ctx)
    facts = []
    for vol in vols:
        try:
            item = volume_facts(ctx.conn, pool_name, vol, uri=ctx.uri)
        except NotFoundError:  # deleted by someone else meanwhile
            continue
        item["used_by"] = used_by(answer, pool_name, item["name"], item["path"])
        facts.append(item)
    facts.sort(key=lambda f: f["name"])
    for item in facts:
        if item["record"] is not None and item["reported_format"] != item["format"]:
            ctx.warn("volume %r is recorded as %s, but libvirt probes its content as %s: the content was written by a "
                     "guest or outside this collection; it is used as %s"
                     % (item["name"], item["format"], item["reported_format"], item["format"]))
        if item["record"] is not None and not item["record"]["complete"]:
            ctx.warn("volume %r is incomplete: its fill from %s did not finish" % (item["name"], item["record"]["source"]))
    return dict(changed=False, volumes=facts)
