# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``vm_keep``: the persistent definitions of this hypervisor's VMs, kept in a store directory
(:mod:`.store`) that the other hypervisors can read, so that ``vm_recover`` can start them elsewhere
when this hypervisor fails.

The state compared is one summary per VM: its UUID, the checksum of its definition, whether it
runs, whether it starts with the host, and the pool of its first writable disk (the pool placement
needs on the hypervisor that takes it over).  A VM that was started, stopped, changed, defined or
undefined since the last run is a change; the definitions themselves never appear in results or
diffs (they carry console passwords).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import DifferenceTracker
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.kind import Kind
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Resource
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.model import summary_from_xml
from ansible_collections.virtops.libvirt.plugins.module_utils._recover import store as _store
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.names import fill_volume_names

_XML_INACTIVE = flag("VIR_DOMAIN_XML_INACTIVE", 2)
_XML_SECURE = flag("VIR_DOMAIN_XML_SECURE", 1)
_LIST_PERSISTENT = flag("VIR_CONNECT_LIST_DOMAINS_PERSISTENT", 4)


def first_pool(summary):
    """The pool of the first writable disk of a domain summary (pools filled in), or None."""
    for disk in summary.get("disks") or ():
        if not disk.get("readonly") and disk.get("pool"):
            return disk["pool"]
    return None


def entry_view(entry):
    """What results and diffs show of an index entry."""
    return dict(uuid=entry["uuid"], definition=entry["sha256"][:16], active=entry["active"],
                autostart=entry["autostart"], pool=entry["pool"])


class KeepResource(Resource):
    kind = "store"

    @property
    def name(self):
        return self.params.get("path")

    @property
    def path(self):
        return _store.check_path(self.params.get("path"))

    def read(self):
        entries = _store.read_index(self.path)
        return None if entries is None else dict(vms=entries)

    def desired(self, current):
        conn = self.ctx.conn
        entries, texts = {}, {}
        with libvirt_errors("listing VMs"):
            domains = conn.listAllDomains(_LIST_PERSISTENT)
        for dom in domains:
            name = dom.name()
            with libvirt_errors("reading VM '%s'" % name):
                text = dom.XMLDesc(_XML_INACTIVE | _XML_SECURE)
                active = bool(dom.isActive())
                autostart = bool(dom.autostart())
            summary = fill_volume_names(conn, summary_from_xml(_xml.parse(text, "domain XML of %s" % name)))
            sha = _store.sha256_text(text)
            entries[name] = dict(uuid=summary["uuid"].lower(), file=_store.file_name(name, sha), sha256=sha,
                                 active=active, autostart=autostart, pool=first_pool(summary))
            texts[name] = text
        return dict(vms=entries, texts=texts)

    def compare(self, current, desired):
        tracker = DifferenceTracker()
        have = (current or {}).get("vms") or {}
        want = desired["vms"]
        if current is None:
            tracker.add(("state",), "absent", "present")
        for name in sorted(set(have) | set(want)):
            before = entry_view(have[name]) if name in have else "absent"
            after = entry_view(want[name]) if name in want else "absent"
            tracker.add_if_different(("vms", name), before, after)
        return tracker

    def plan(self, current, desired, diff, plan):
        if not diff:
            return None
        have = (current or {}).get("vms") or {}
        want = desired["vms"]
        added = sorted(set(want) - set(have))
        removed = sorted(set(have) - set(want))
        updated = sorted(n for n in set(want) & set(have) if entry_view(want[n]) != entry_view(have[n]))
        parts = ["%s: %s" % (word, ", ".join(names)) for word, names in
                 (("added", added), ("updated", updated), ("removed", removed)) if names]
        path = self.path
        plan.add("keep the definitions of %d VM(s) in %s (%s)" % (len(want), path, "; ".join(parts) or "new store"),
                 action=lambda: _store.write_store(path, want, desired["texts"], have))
        return None

    def predict(self, current, desired):
        return dict(vms=desired["vms"])

    def diff_views(self, current, desired):
        def view(state):
            if state is None:
                return dict(state="absent")
            return dict(vms=dict((n, entry_view(e)) for n, e in sorted(state["vms"].items())))
        return view(current), view(self.predict(current, desired))

    def result(self, state, outcome):
        vms = (state or {}).get("vms") or {}
        return dict(path=self.path, vms=[dict(entry_view(vms[n]), name=n) for n in sorted(vms)])


KEEP = Kind(
    "vm_keep",
    dict(COMMON_ARGS, path=dict(type="path", required=True)),
    KeepResource,
)
