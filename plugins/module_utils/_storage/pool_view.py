# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Storage pools, read only: lookup, refresh, their volumes and the facts ``pool`` and ``pool_info``
return (``pool_info`` ships this file and the model, nothing that writes)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._storage.pool_model import model_from_xml, validate_name

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import specified
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import NotFoundError, VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_pool, refresh_pool


POOL_STATES = {0: "inactive", 1: "building", 2: "running", 3: "degraded", 4: "inaccessible"}


def refresh(pool):
    """Refresh an active pool so volumes created outside libvirt are seen (a racing job is fine: the
    pool is read as it is, without waiting)."""
    if pool.isActive():
        try:
            refresh_pool(pool, timeout=0)
        except VirtopsError:
            pass


def user_volumes(pool, pool_type):
    """The pool's volumes, less what the filesystem itself owns (``lost+found`` of fs pools).

    libvirt lists an fs pool's ``lost+found`` as a volume; counting it would make every new fs
    pool "hold a volume" and refuse ``state: absent``.
    """
    names = pool.listVolumes()
    if pool_type == "fs":
        names = [n for n in names if n != "lost+found"]
    return sorted(names)


def pool_facts(pool, with_volumes=False):
    """What ``pool_info`` and ``pool`` return about one pool (sizes in bytes; 0 when inactive)."""
    name = pool.name()
    with libvirt_errors("reading storage pool '%s'" % name):
        refresh(pool)
        active = bool(pool.isActive())
        state, capacity, allocation, available = pool.info()
        model = model_from_xml(pool.XMLDesc(0))
        volumes = user_volumes(pool, model["type"]) if active else None
        facts = dict(
            name=name,
            uuid=pool.UUIDString(),
            type=model["type"],
            state="active" if active else "inactive",
            libvirt_state=POOL_STATES.get(state, "unknown"),
            active=active,
            autostart=bool(pool.autostart()),
            persistent=bool(pool.isPersistent()),
            path=model["path"],
            source=specified(model["source"]),
            permissions=model["permissions"],
            capacity=capacity,
            allocation=allocation,
            available=available,
            volume_count=len(volumes) if volumes is not None else None,
        )
    if with_volumes:
        facts["volumes"] = volumes
    return facts


def gather_pool_info(ctx):
    """``pool_info``: every pool, or the one named (NotFoundError when it does not exist)."""
    conn = ctx.conn
    name = ctx.params.get("name")
    with_volumes = bool(ctx.params.get("volumes"))
    if name is not None:
        validate_name(name)
        pool = find_pool(conn, name)
        if pool is None:
            with libvirt_errors("listing storage pools"):
                names = sorted(p.name() for p in conn.listAllStoragePools(0))
            raise NotFoundError(
                "Storage pool '%s' does not exist; existing pools: %s" % (name, ", ".join(names) or "none"),
                pools=[],
            )
        pools = [pool]
    else:
        with libvirt_errors("listing storage pools"):
            pools = conn.listAllStoragePools(0)
    facts = []
    for pool in pools:
        try:
            facts.append(pool_facts(pool, with_volumes))
        except NotFoundError:
            continue  # removed while we looked
    return dict(changed=False, pools=sorted(facts, key=lambda p: p["name"]))
