# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""In which order the items of ``apply`` run: a graph of :class:`~.items.Item`.

* An item that refers to what another item provides *needs* it: a volume needs its pool, a VM its
  volumes, networks and seed.  When the item is made or changed, the provider goes first; when both
  take their objects away (``state: absent``), the user goes first and the provider after it, so that a
  pool is removed after its volumes and a network after its VMs.  An item whose needed item failed (or was
  not attempted) is not attempted.
* Items of one VM (the VM and its snapshots) run one *after* the other in input order; the failure of
  one does not hold back the next.
* Volumes, seeds, pools and networks taken away run *after* the VMs taken away on the same hypervisor
  (whose disks and interfaces a removal need not list); the failure of such a VM does not hold them back.
* Everything else may run at the same time.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError


class Graph:
    """``needs[i]``: the indexes item ``i`` needs; ``after[i]``: the ones it only waits for;
    ``users[i]``: the items that need ``i``; ``waiters[i]``: every item that waits for ``i``."""

    def __init__(self, items):
        self.items = dict((item.index, item) for item in items)
        self.needs = dict((i, set()) for i in self.items)
        self.after = dict((i, set()) for i in self.items)
        providers = _providers(items)
        for item in items:
            for ref in item.refers:
                provider = providers.get(ref)
                if provider is None or provider.index == item.index:
                    continue
                if item.removing:
                    if provider.removing:  # the user goes first
                        self.needs[provider.index].add(item.index)
                else:
                    self.needs[item.index].add(provider.index)
        _after_removed_vms(items, self.after)
        last = {}
        for item in items:  # input order within a lock
            if item.lock is not None:
                if item.lock in last:
                    self.after[item.index].add(last[item.lock])
                last[item.lock] = item.index
        self.users = dict((i, set()) for i in self.items)
        self.waiters = dict((i, set()) for i in self.items)
        for i in self.items:
            for j in self.needs[i]:
                self.users[j].add(i)
            for j in self.needs[i] | self.after[i]:
                self.waiters[j].add(i)
        self._check_cycles()

    def waits_for(self, index):
        return self.needs[index] | self.after[index]

    def first(self):
        """The indexes that wait for nothing, in input order."""
        return sorted(i for i in self.items if not self.waits_for(i))

    def dependants(self, index):
        """Every item that needs ``index``, directly or through others, in input order."""
        seen, todo = set(), [index]
        while todo:
            for user in self.users[todo.pop()]:
                if user not in seen:
                    seen.add(user)
                    todo.append(user)
        return sorted(seen)

    def _check_cycles(self):
        waiting = dict((i, len(self.waits_for(i))) for i in self.items)
        ready = [i for i, n in waiting.items() if n == 0]
        while ready:
            for waiter in self.waiters[ready.pop()]:
                waiting[waiter] -= 1
                if waiting[waiter] == 0:
                    ready.append(waiter)
        stuck = sorted(i for i, n in waiting.items() if n)
        if stuck:
            raise InvalidInputError("these resources wait for each other in a circle, so none can go first: %s"
                                    % ", ".join(self.items[i].label for i in stuck))


#: kinds whose objects a VM may use: taken away, they wait for the VMs taken away on the same hypervisor
_USED_BY_VMS = ("volume", "cloudinit", "pool", "network", "nwfilter", "secret")


def _after_removed_vms(items, after):
    """A VM item that removes a VM need not list its disks, seeds or interfaces (``{kind: vm, name: web1,
    state: absent}``), so the volumes, seeds, pools and networks it uses are not known before it runs: every
    such object removed on the same URI waits for every VM removed there.  It only waits (the VM may not
    use it): when the VM's removal fails, the object's own module still refuses to remove what is in use."""
    removed_vms = {}
    for item in items:
        if item.removing and item.kind.name == "vm":
            removed_vms.setdefault(item.params.get("uri"), set()).add(item.index)
    for item in items:
        if item.removing and item.kind.name in _USED_BY_VMS:
            after[item.index].update(removed_vms.get(item.params.get("uri"), ()))


def _providers(items):
    """``{key: item}``; InvalidInputError when two items declare the same object."""
    providers, clashes = {}, []
    for item in items:
        for key in item.provides:
            other = providers.get(key)
            if other is not None:
                clashes.append("%s and %s declare the same object" % (other.label, item.label))
            else:
                providers[key] = item
    if clashes:
        raise InvalidInputError("; ".join(clashes) + ": merge them into one item")
    return providers
