# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``vm_template_info``: the templates of one pool, or of every active directory pool this node sees,
each with the VMs that use its base volumes (linked clones, through their overlays)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import usage, vm_names
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import lookup_pool, pool_target_path
from ansible_collections.virtops.libvirt.plugins.module_utils._template import store as _store


def _pools(ctx):
    """(pool name, directory) of the pools to look in."""
    name = ctx.params.get("pool")
    if name is not None:
        return [(name, _store.template_dir(ctx, lookup_pool(ctx.conn, name)))]
    _store.require_local(ctx, "pool")
    found = []
    with libvirt_errors("listing storage pools"):
        pools = [p for p in ctx.conn.listAllStoragePools(0) if p.isActive()]
    for pool in sorted(pools, key=lambda p: p.name()):
        target = pool_target_path(pool)
        if target and os.path.isdir(target):
            found.append((pool.name(), target))
    return found


def gather_template_info(ctx):
    name = ctx.params.get("name")
    if name is not None:
        _store.validate_template_name(name)
    pools = _pools(ctx)
    answer = usage(ctx)
    templates = []
    for pool_name, directory in pools:
        if name is not None:
            found = _store.find_template(directory, name, pool_name)
            items = [found] if found is not None else []
        else:
            items = _store.list_templates(directory, pool_name, warn=ctx.warn)
        for facts in items:
            users, dependants = answer.users_of(paths=[d["path"] for d in facts["disks"]])
            item = _store.view(facts)
            item.update(used_by=vm_names(users), dependants=list(dependants))
            templates.append(item)
    return dict(changed=False, templates=templates)
