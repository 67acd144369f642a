# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Removing a ``vm``: power off, undefine (with its NVRAM and the state of its emulated TPM, which
libvirt keeps in ``/var/lib/libvirt/swtpm/<uuid>``), and with ``remove_storage`` delete the volumes
only this VM uses (its writable disks and its own seed), never one another VM or volume depends on.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import retry_busy
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Outcome
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import describe, usage, vm_names


def undefine_flags():
    flags = 0
    for name in ("VIR_DOMAIN_UNDEFINE_MANAGED_SAVE", "VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA",
                 "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA", "VIR_DOMAIN_UNDEFINE_NVRAM",
                 "VIR_DOMAIN_UNDEFINE_TPM"):  # the state of an emulated TPM (swtpm) goes with the VM
        flags |= flag(name)
    return flags


def plan_absent(vm, current, plan):
    """The steps that remove VM ``vm`` (a VmResource); the Outcome names the volumes deleted."""
    if current["active"]:
        plan.add("power off VM %s" % vm.name, vm._call("stopping", "destroy"))
    owned = owned_volumes(vm.ctx, vm.name, current, plan) if vm.params.get("remove_storage") else []
    tpm = (current.get("tpm") or {}).get("model") not in (None, "none")
    plan.add("undefine VM %s%s" % (vm.name, " and remove its TPM state" if tpm else ""),
             vm._call("undefining", "undefineFlags", undefine_flags()))
    for path in owned:
        plan.add("delete volume %s" % path, delete_path(vm.ctx, path))
    return Outcome(removed_volumes=owned)


def owned_volumes(ctx, name, current, plan):
    """Writable disk volumes (and its own seed) that no other VM uses and no other volume is based on
    (:mod:`_usage`: other VMs running or not, their snapshots, NVRAM...; overlays in any pool)."""
    owned = []
    answer = usage(ctx)
    seed = "%s-seed.iso" % name
    for cdrom in current["cdroms"]:
        if cdrom.get("path") and cdrom["path"].rsplit("/", 1)[-1] == seed:
            if not answer.users_of([cdrom["path"]], exclude_vms=[name])[0]:
                owned.append(cdrom["path"])
    for disk in current["disks"]:
        path = disk.get("path")
        if not path or disk.get("readonly"):
            continue
        users, based = answer.users_of([path], exclude_vms=[name])
        direct = [u for u in users if not u.get("via") and u["role"] != "backing file"]
        if direct or (users and not based):
            direct = direct or users
            plan.warn("kept %s: VM %s uses it too (%s)" % (path, ", ".join(vm_names(direct)), describe(direct)))
            continue
        if based:
            plan.warn("kept %s: volumes %s are based on it" % (path, ", ".join(based)))
            continue
        try:
            ctx.conn.storageVolLookupByPath(path)
        except libvirt.libvirtError:
            plan.warn("kept %s: it is not a volume of a libvirt storage pool" % path)
            continue
        owned.append(path)
    return owned


def delete_path(ctx, path):
    """A step that deletes the pool volume at ``path`` (looked up when it runs)."""
    def call():
        with libvirt_errors("deleting volume %s" % path):
            vol = ctx.conn.storageVolLookupByPath(path)
        retry_busy(lambda: vol.delete(0), "deleting volume %s" % path)

    return call
