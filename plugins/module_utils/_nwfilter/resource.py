# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``nwfilter`` resource: one libvirt network filter (its chain, priority, rules and references).

* Idempotency is on the normalised rule list (``model``): the rules read back from libvirt have the
  same shape as the rules asked for, libvirt's default priority filled in, so a second run compares
  equal.  ``rules`` and ``filterrefs`` are complete, ordered lists; a list not given is kept.
* A change redefines the filter with its UUID kept.  libvirt re-instantiates a redefined filter on the
  interfaces of running guests that use it (directly or through other filters): no restart.
* ``--diff`` shows each rule as one line (``model.rule_text``), so a changed rule is one changed line.
* Removal is refused while VMs' interfaces reference the filter (directly, or through filters that
  reference it) or other filters reference it, unless ``force``; the refusal names the VMs and the
  filters (``_core.usage``).  libvirt itself still refuses to remove a filter that a running guest's
  interface has instantiated: ``force`` cannot override that.
* libvirt's own filters (``model.BUILTIN_FILTERS``, such as ``clean-traffic``) are never changed or
  removed: libvirtd re-creates them at start, and guests and other filters rely on them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import ABSENT, DifferenceTracker
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import lookup_or_none
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Resource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import describe, guard, usage
from ansible_collections.virtops.libvirt.plugins.module_utils._nwfilter.codec import model_from_xml, references, xml_from_model
from ansible_collections.virtops.libvirt.plugins.module_utils._nwfilter.model import (
    BUILTIN_FILTERS,
    filterref_text,
    normalize_model,
    rule_text,
    validate_name,
)

KEYS = ("chain", "priority", "rules", "filterrefs")


def find_nwfilter(conn, name):
    """The network filter ``name``, or None."""
    return lookup_or_none(conn.nwfilterLookupByName, name, flag("VIR_ERR_NO_NWFILTER", 62), "network filter")


def all_filters(conn):
    """``{name: [referenced filter names]}`` of every network filter of the connection."""
    found = {}
    with libvirt_errors("listing network filters"):
        filters = conn.listAllNWFilters(0)
    for item in filters:
        try:
            found[item.name()] = references(item.XMLDesc(0))
        except libvirt.libvirtError:
            continue  # removed while we looked
    return found


def referrers(filters, name):
    """The filters that reference ``name``, directly or through others (``filters`` from :func:`all_filters`)."""
    found, frontier = set(), {name}
    while frontier:
        step = set(f for f, refs in filters.items() if frontier & set(refs)) - found - {name}
        found |= step
        frontier = step
    return sorted(found)


def _view(model):
    """A model as ``--diff`` and the result show it: rules and references one line each."""
    if model is None:
        return None
    out = dict((k, model[k]) for k in ("chain", "priority") if model.get(k) is not None)
    if model.get("filterrefs") is not None:
        out["filterrefs"] = [filterref_text(r) for r in model["filterrefs"]]
    if model.get("rules") is not None:
        out["rules"] = [rule_text(r) for r in model["rules"]]
    return out


def in_use(name, users, filters):
    """The refusal to remove filter ``name``: VM interfaces ``users`` (``_core.usage``) and the filters
    ``filters`` reference it; None when nothing does."""
    if not users and not filters:
        return None
    parts = []
    if users:
        parts.append("is used by %s" % describe(users))
    if filters:
        parts.append("is referenced by network filter(s) %s" % ", ".join(filters))
    what = "network filter '%s' %s" % (name, " and ".join(parts))
    error = ConflictError("%s: remove those references first (a guest whose interface references a missing filter "
                          "cannot start), or set force: true to remove it anyway" % what,
                          used_by=[dict((k, v) for k, v in u.items() if v is not None) for u in users],
                          referenced_by=list(filters))
    error.in_use = what
    return error


class NwFilterResource(Resource):
    """One network filter; ``plan`` returns no outcome beyond its steps."""

    kind = "network filter"

    def __init__(self, ctx):
        super(NwFilterResource, self).__init__(ctx)
        self._uuid = None

    def read(self):
        validate_name(self.name)
        obj = find_nwfilter(self.ctx.conn, self.name)
        if obj is None:
            return None
        with libvirt_errors("reading network filter '%s'" % self.name):
            text = obj.XMLDesc(0)
        current = model_from_xml(text)
        current["xml"] = text
        self._uuid = current["uuid"]
        return current

    def desired(self, current):
        if self.params.get("state") == "absent":
            if self.name in BUILTIN_FILTERS:
                raise InvalidInputError("network filter '%s' ships with libvirt (libvirtd re-creates it when it starts, and "
                                        "guests and other filters use it): this module does not remove it" % self.name)
            return None
        model = normalize_model(self.params)
        for ref in model.get("filterrefs") or ():
            if ref["filter"] == self.name:
                raise InvalidInputError("filterrefs: filter '%s' cannot reference itself" % self.name)
        return model

    def compare(self, current, desired):
        if current is None or desired is None:
            return super(NwFilterResource, self).compare(current, desired)
        tracker = DifferenceTracker()
        for key in KEYS:
            if desired.get(key) is not None and desired[key] != current.get(key):
                tracker.add((key,), _view(current).get(key), _view(desired).get(key))
        if tracker and self.name in BUILTIN_FILTERS:
            raise InvalidInputError("network filter '%s' ships with libvirt and libvirtd restores it when it starts: "
                                    "define a filter of your own that references it (filterrefs) instead of changing it"
                                    % self.name)
        return tracker

    def _final(self, current, desired):
        out = dict((k, (current or {}).get(k)) for k in KEYS)
        out.update((k, v) for k, v in desired.items() if v is not None)
        return out

    def predict(self, current, desired):
        if desired is None:
            return None
        out = self._final(current, desired)
        out.update(name=self.name, uuid=(current or {}).get("uuid"))
        return out

    def plan(self, current, desired, diff, plan):
        if desired is None:
            if current is not None:
                self._plan_absent(current, plan)
            return None
        if not diff:
            return None
        self._check_references(desired)
        uuid = current["uuid"] if current is not None else None
        text = _xml.to_string(xml_from_model(self.name, self._final(current, desired), uuid))
        if current is None:
            plan.add("define network filter %s" % self.name, lambda: self._define(text), undo=self._undefine)
        else:
            old = current["xml"]
            plan.add("redefine network filter %s (%s)" % (self.name, ", ".join(diff.paths)), lambda: self._define(text),
                     undo=lambda: self._define(old))
        return None

    def _check_references(self, desired):
        """Every referenced filter exists (an earlier task may define it: check mode assumes so) and
        no reference loops back to this filter."""
        refs = [r["filter"] for r in desired.get("filterrefs") or ()]
        if not refs:
            return
        filters = all_filters(self.ctx.conn)
        for name in refs:
            if name not in filters:
                self.ctx.assume(NotFoundError("filterrefs: network filter '%s' does not exist (define it first)" % name))
        loops = [name for name in refs if name in referrers(filters, self.name)]
        if loops:
            raise InvalidInputError("filterrefs: %s reference(s) network filter '%s' already, so a reference back "
                                    "would be a loop" % (", ".join(loops), self.name))

    def _plan_absent(self, current, plan):
        filters = all_filters(self.ctx.conn)
        via = referrers(filters, self.name)
        users = [dict(u) for u in usage(self.ctx).filter_users([self.name] + via)]
        for use in users:
            if use.get("filter") != self.name:
                use["via"] = "filter %s" % use["filter"]
        direct = sorted(f for f, refs in filters.items() if self.name in refs)
        guard(self.ctx, in_use(self.name, users, direct), self.params.get("force"), plan.warn)
        old = current["xml"]
        plan.add("undefine network filter %s" % self.name, self._undefine, undo=lambda: self._define(old))

    def _define(self, text):
        with libvirt_errors("defining network filter '%s'" % self.name):
            self.ctx.conn.nwfilterDefineXML(text)

    def _undefine(self):
        with libvirt_errors("removing network filter '%s'" % self.name):
            obj = find_nwfilter(self.ctx.conn, self.name)
            if obj is None:
                raise NotFoundError("network filter '%s' disappeared" % self.name)
            try:
                obj.undefine()
            except libvirt.libvirtError as exc:
                if "in use" in str(exc):
                    raise ConflictError("network filter '%s' is in use by a running guest's interface, and libvirt "
                                        "refuses to remove it (force cannot override that): %s" % (self.name, exc))
                raise

    def diff_views(self, current, desired):
        if desired is None:
            return ({"state": ABSENT} if current is None else dict(_view(current), state="present")), {"state": ABSENT}
        if current is None:
            return {"state": ABSENT}, dict(_view(self._final(None, desired)), state="present")
        shown = dict((k, v) for k, v in desired.items() if v is not None)
        before = _view(dict((k, current.get(k)) for k in shown))
        return before, _view(shown)

    def result(self, state, outcome):
        if state is None:
            return dict(nwfilter=None)
        view = _view(state)
        view.update(name=self.name, uuid=state.get("uuid"), builtin=self.name in BUILTIN_FILTERS,
                    rules=[dict((k, v) for k, v in r.items()) for r in state.get("rules") or []],
                    filterrefs=state.get("filterrefs") or [])
        return dict(nwfilter=view)
