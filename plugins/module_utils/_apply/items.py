# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The items of the ``apply`` module: each a ``kind`` and exactly the options of that kind's module,
validated with that module's own :class:`~._core.kind.Kind`; what each item makes and what it uses.

An item *provides* keys (``("volume", uri, pool, name)``) and *refers to* keys; :mod:`.order` turns
those into an order.  Keys carry the item's ``uri``: the same pool on two hypervisors is two pools.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError

# Each kind (and the code of its resource) is imported when an item names it: a task of volumes does not
# compile the VM's, the seed's or the network's code (a third of a second per task, issue 16's volume_clones).
# The packer still ships every kind: it finds these imports inside the functions.


def _pool():
    from ansible_collections.virtops.libvirt.plugins.module_utils._storage.pool_kind import POOL

    return POOL


def _network():
    from ansible_collections.virtops.libvirt.plugins.module_utils._network.kind import NETWORK

    return NETWORK


def _volume():
    from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_kind import VOLUME

    return VOLUME


def _cloudinit():
    from ansible_collections.virtops.libvirt.plugins.module_utils._cloudinit.kind import CLOUDINIT

    return CLOUDINIT


def _vm():
    from ansible_collections.virtops.libvirt.plugins.module_utils._domain.kind import VM

    return VM


def _snapshot():
    from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot.kind import SNAPSHOT

    return SNAPSHOT


def _nwfilter():
    from ansible_collections.virtops.libvirt.plugins.module_utils._nwfilter.kind import NWFILTER

    return NWFILTER


def _secret():
    from ansible_collections.virtops.libvirt.plugins.module_utils._secret.kind import SECRET

    return SECRET


_LOADERS = dict(pool=_pool, network=_network, volume=_volume, cloudinit=_cloudinit, vm=_vm, snapshot=_snapshot,
                nwfilter=_nwfilter, secret=_secret)

#: the short names of the modules whose options an item may have
KINDS = tuple(sorted(_LOADERS))

_PREFIX = "virtops.libvirt."


def kind_named(name):
    """The :class:`Kind` called ``name`` (``volume`` or ``virtops.libvirt.volume``), or None; imported
    on first use."""
    if not isinstance(name, str):
        return None
    loader = _LOADERS.get(name[len(_PREFIX):] if name.startswith(_PREFIX) else name)
    return loader() if loader is not None else None


class Item:
    """One entry of ``resources``: its place in the list, its kind and its validated parameters."""

    __slots__ = ("index", "kind", "params", "provides", "refers", "lock")

    def __init__(self, index, kind, params):
        self.index = index
        self.kind = kind
        self.params = params
        self.provides, self.refers, self.lock = _relations(kind.name, params)

    @property
    def removing(self):
        """Whether the item takes its object away (its users go first)."""
        return self.params.get("state") == "absent"

    @property
    def label(self):
        """``resources[3] (volume 'web1.qcow2' in pool 'default')``: how messages name the item."""
        return "resources[%d] (%s)" % (self.index, describe(self.kind.name, self.params))

    def __repr__(self):
        return "Item(%s)" % self.label


def describe(kind, params):
    """A few words naming the object of an item, without the item's place."""
    name = params.get("name")
    if kind in ("volume", "cloudinit") and params.get("pool") is not None:
        word = "volume" if kind == "volume" else "cloud-init seed"
        return "%s %r in pool %r" % (word, name, params["pool"])
    if kind == "cloudinit":
        return "cloud-init seed %r" % params.get("path")
    if kind == "secret":
        return "secret %s %r" % (params.get("usage_type") or "", params.get("usage_id") or params.get("uuid"))
    if kind == "nwfilter":
        return "network filter %r" % name
    if kind == "snapshot":
        if name is None:
            return "snapshots of VM %r" % params.get("vm")
        return "snapshot %r of VM %r" % (name, params.get("vm"))
    return "%s %r" % ("VM" if kind == "vm" else kind, name)


def _relations(kind, p):
    """``(provides, refers, lock)`` of an item of ``kind`` with parameters ``p``."""
    uri = p.get("uri")
    provides, refers, lock = [], [], None

    def volume(pool, name):
        if pool is not None and name is not None:
            refers.append(("pool", uri, pool))
            refers.append(("volume", uri, pool, name))

    if kind in ("pool", "network", "nwfilter"):
        provides.append((kind, uri, p["name"]))
        for ref in p.get("filterrefs") or ():
            refers.append(("nwfilter", uri, ref.get("filter")))
    elif kind == "secret":
        # referred to by its usage (a UUID given elsewhere does not order the items)
        provides.append(("secret", uri, p.get("usage_id") or p.get("uuid")))
    elif kind == "volume":
        provides.append(("volume", uri, p["pool"], p["name"]))
        refers.append(("pool", uri, p["pool"]))
        if p.get("encryption"):
            refers.append(("secret", uri, p["encryption"].get("secret")))
        for key in ("backing_volume", "clone_from"):
            if p.get(key):
                refers.append(("volume", uri, p["pool"], p[key]))
    elif kind == "cloudinit":
        if p.get("pool") is not None:
            provides.append(("volume", uri, p["pool"], p["name"]))
            refers.append(("pool", uri, p["pool"]))
        else:
            provides.append(("file", uri, p["path"]))
    elif kind == "vm":
        provides.append(("vm", uri, p["name"]))
        lock = ("vm", uri, p["name"])
        for disk in list(p.get("disks") or ()) + list(p.get("cdroms") or ()):
            volume(disk.get("pool"), disk.get("volume"))
            if disk.get("backing_volume"):
                volume(disk.get("backing_pool") or disk.get("pool"), disk["backing_volume"])
            if disk.get("path"):
                refers.append(("file", uri, disk["path"]))
            if disk.get("encryption"):
                refers.append(("secret", uri, disk["encryption"].get("secret")))
        for nic in p.get("interfaces") or ():
            if nic.get("network"):
                refers.append(("network", uri, nic["network"]))
            if (nic.get("filter") or {}).get("name"):
                refers.append(("nwfilter", uri, nic["filter"]["name"]))
        seed = p.get("cloud_init")
        if seed:
            refers.append(("pool", uri, seed.get("pool")))
            volume(seed.get("pool"), seed.get("volume"))
        if p.get("clone_from"):
            refers.append(("vm", uri, p["clone_from"]))
    elif kind == "snapshot":
        # a snapshot runs in input order with its VM's other items (the same lock), not by reference
        lock = ("vm", uri, p["vm"])
        if p.get("name") is not None:
            provides.append(("snapshot", uri, p["vm"], p["name"]))
    return provides, [r for r in refers if r not in provides], lock


def validate(resources, uri):
    """``[Item]`` of the ``resources`` option; InvalidInputError naming every bad item and option.

    ``uri`` is the task's own: an item without ``uri`` gets it.  Returns ``(items, no_log_values)``:
    the values of ``no_log`` options, to mask in everything the task returns.
    """
    if not isinstance(resources, list):
        raise InvalidInputError("resources must be a list of dictionaries, got %s" % type(resources).__name__)
    items, problems, secrets = [], [], set()
    for index, entry in enumerate(resources):
        where = "resources[%d]" % index
        if not isinstance(entry, dict):
            problems.append("%s: must be a dictionary with a kind and the options of that kind's module, got %s"
                            % (where, type(entry).__name__))
            continue
        kind = kind_named(entry.get("kind"))
        if kind is None:
            problems.append("%s: kind must be one of %s, got %r" % (where, ", ".join(sorted(KINDS)), entry.get("kind")))
            continue
        given = dict((k, v) for k, v in entry.items() if k != "kind")
        given.setdefault("uri", uri)
        if kind.secrets is not None:
            secrets.update(kind.secrets(given))
        params, errors, masked = _check(kind, given)
        secrets.update(masked)
        if errors:
            problems.append("%s (%s): %s" % (where, describe(kind.name, given), "; ".join(errors)))
            continue
        items.append(Item(index, kind, params))
    if problems:
        raise InvalidInputError("; ".join(problems), invalid_items=len(problems))
    return items, secrets


def _check(kind, given):
    """``(params, errors, no_log_values)`` of ``given`` under ``kind``'s argument spec."""
    kwargs = kind.module_kwargs()
    kwargs.pop("supports_check_mode")
    spec = kwargs.pop("argument_spec")
    result = ArgumentSpecValidator(spec, **kwargs).validate(given)
    errors = []
    for error in result.errors:
        if isinstance(error, UnsupportedError):
            continue  # said once below, with the item's own words
        errors.append(str(error))
    if result.unsupported_parameters:
        errors.insert(0, "unsupported option%s %s (the %s module has: %s)" % (
            "s" if len(result.unsupported_parameters) > 1 else "", ", ".join(sorted(result.unsupported_parameters)),
            kind.name, ", ".join(sorted(spec))))
    return result.validated_parameters, errors, set(result._no_log_values)  # pylint: disable=protected-access
