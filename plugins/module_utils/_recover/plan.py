# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where each VM of a failed hypervisor goes (the ``virtops.libvirt.recover_plan`` filter).

Pure Python on plain data: the ``kept`` result of ``vm_recover`` (what was kept of the failed
host's VMs) and the ``host_info``/``vm_info`` results of the surviving hypervisors.  The VMs go
through :func:`.._cluster.placement.place` with the same limits as the ``guests`` role: a VM that a
survivor already has (a run before this one recovered it) stays there; the others are placed as
new guests, each needing the pool of its first writable disk active on the survivor (the shared
storage its disk is on).  A survivor that has a VM of the same name but another UUID is an error: that
VM is not the one to recover.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._cluster.placement import place
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError

#: what the filter returns per VM, besides ``name``
ACTIONS = ("none", "start", "define", "define and start")


def _registered(results, key):
    """``{hypervisor: value[key]}`` of a registered looped task (its items are the hypervisor names)."""
    if isinstance(results, dict):
        results = results.get("results")
    if not isinstance(results, list) or not results:
        raise InvalidInputError("recover_plan: %s must be the registered results of a task looped over the survivors" % key)
    out = {}
    for res in results:
        if not isinstance(res, dict) or key not in res or "item" not in res:
            raise InvalidInputError("recover_plan: a result without 'item' and '%s' (was the task skipped or did it fail?)" % key)
        out[str(res["item"])] = res[key]
    return out


def capacity(hosts, vms):
    """The placement ``capacity`` table from the looped ``host_info`` and ``vm_info`` results."""
    host_of = _registered(hosts, "host")
    vms_of = _registered(vms, "vms")
    if set(host_of) != set(vms_of):
        raise InvalidInputError("recover_plan: host_info and vm_info were not run on the same survivors")
    return dict((h, dict(host=host_of[h], vms=vms_of[h])) for h in host_of)


def _found(kept, table):
    """``{name: (hypervisor, vm)}`` of the kept VMs a survivor has; refuses a name with another UUID."""
    found = {}
    for vm in kept:
        for hv in sorted(table):
            for have in table[hv]["vms"]:
                if have.get("name") != vm["name"]:
                    continue
                if (have.get("uuid") or "").lower() != vm["uuid"]:
                    raise ConflictError("recover_plan: %s has a different VM named %s (uuid %s, the kept one is %s); "
                                        "rename or remove one of them" % (hv, vm["name"], have.get("uuid"), vm["uuid"]))
                found[vm["name"]] = (hv, have)
    return found


def recover_plan(kept, hosts, vms, include_stopped=True, exclude=(), max_vcpu_ratio=4.0, max_memory_ratio=1.0,
                 reserve_memory_mib=512):
    """One item per VM to recover: ``name``, ``hypervisor``, ``state`` (running or stopped, as it was
    when kept) and ``action`` (:data:`ACTIONS`), sorted by name; and the placement notes."""
    if not isinstance(kept, list):
        raise InvalidInputError("recover_plan: the input must be the 'kept' list of vm_recover")
    table = capacity(hosts, vms)
    wanted = [vm for vm in kept if vm["name"] not in (exclude or ()) and (vm["active"] or include_stopped)]
    found = _found(wanted, table)
    guests = []
    for vm in wanted:
        guest = dict(name=vm["name"], vcpus=vm["vcpus"], memory=vm["memory"])
        for key in ("arch", "anti_affinity", "pool"):
            if vm.get(key):
                guest[key] = vm[key]
        guests.append(guest)
    placed, notes = place(guests, table, max_vcpu_ratio=max_vcpu_ratio, max_memory_ratio=max_memory_ratio,
                          reserve_memory_mib=reserve_memory_mib)
    where = dict((g["name"], g["hypervisor"]) for g in placed)
    out = []
    for vm in sorted(wanted, key=lambda v: v["name"]):
        state = "running" if vm["active"] else "stopped"
        have = found.get(vm["name"])
        if have is None:
            action = "define and start" if state == "running" else "define"
        elif state == "running" and not have[1].get("active") and have[1].get("state") != "running":
            action = "start"
        else:
            action = "none"
        out.append(dict(name=vm["name"], hypervisor=where[vm["name"]], state=state, action=action))
    return out, notes
