# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``snapshot`` module: one named snapshot of a VM (present / reverted / absent) plus retention.

Kinds of snapshot the module makes:

* **internal** (the default): kept inside the VM's qcow2 disks. Of a running (or paused) VM it
  includes the memory, so a revert resumes the guest where it was; of a stopped VM it is disks only.
  Every writable disk must be qcow2 (read-only disks and CD-ROMs are left out).
* **external, disk only** (``disk_only``): every writable disk gets a new qcow2 overlay next to it,
  named ``<vm>-<target>.<snapshot>.qcow2``; the file it had is frozen as the snapshot's state.
  Deleting such a snapshot merges its overlay back (libvirt's block commit), so nothing is lost.

A revert is recorded in the VM's metadata under our snapshot namespace, so that ``reverted`` is
idempotent: the VM is "at" a snapshot when this module reverted it there, libvirt's current
snapshot is still that one, and the VM is in the requested run state.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot import checks as _checks
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot.actions import SnapshotCalls
from ansible_collections.virtops.libvirt.plugins.module_utils._snapshot.view import (
    EXTERNAL_REVERT_VERSION,
    REVERT_NS,
    list_snapshots,
    lookup_vm,
    validate_name,
)

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import ABSENT, DifferenceTracker
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._host.capabilities import version_string
from ansible_collections.virtops.libvirt.plugins.module_utils._host.facts import run_state
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Outcome, Resource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import parse_duration


class SnapshotResource(Resource):
    """``snapshot``: one named snapshot of a VM (present / reverted / absent) plus retention.

    ``read()`` returns, besides the module's facts, ``_snapshots`` (the facts of every snapshot) and
    ``_model`` (the VM's model) for the plan.
    """

    kind = "snapshot"

    def __init__(self, ctx, clock=time.time):
        super(SnapshotResource, self).__init__(ctx)
        self._clock = clock
        self._dom = None

    @property
    def vm_name(self):
        return self.params["vm"]

    # --- read ----------------------------------------------------------------------------------

    def read(self):
        self._check_params()
        try:
            self._dom = lookup_vm(self.ctx.conn, self.vm_name)
        except NotFoundError as exc:
            return self._vm_missing(exc)
        dom = self._dom
        with libvirt_errors("reading VM '%s'" % self.vm_name):
            active = bool(dom.isActive())
            model = _domain.model_from_xml(dom.XMLDesc(0))
            marker = self._revert_marker()
        snapshots = list_snapshots(dom)
        by_name = dict((f["name"], f) for f in snapshots)
        current = [f["name"] for f in snapshots if f["current"]]
        return dict(
            snapshot=by_name.get(self.name) if self.name else None,
            snapshots=[f["name"] for f in snapshots],
            current=current[0] if current else None,
            vm_state=run_state(dom),
            active=active,
            reverted_to=marker,
            _snapshots=snapshots,
            _model=model,
        )

    def _vm_missing(self, error):
        """No VM: its snapshots are absent; to make or revert one, in check mode, an earlier task may
        create the VM (a real run fails)."""
        if (self.params.get("state") or "present") != "absent":
            self.ctx.assume(error)
        return dict(snapshot=None, snapshots=[], current=None, vm_state=None, active=False, reverted_to=None,
                    vm_missing=True)

    def _revert_marker(self):
        try:
            text = self._dom.metadata(flag("VIR_DOMAIN_METADATA_ELEMENT", 2), REVERT_NS, 0)
        except libvirt.libvirtError:
            return None
        node = _xml.parse(text, "snapshot metadata")
        return node.get("reverted-to")

    def _check_params(self):
        p = self.params
        _domain.validate_name(self.vm_name)
        state = p.get("state") or "present"
        if self.name is not None:
            validate_name(self.name)
        elif state != "present" or (p.get("keep_last") is None and p.get("max_age") is None):
            raise InvalidInputError("name: required with state=%s%s" % (
                state, "" if state != "present" else " unless keep_last or max_age prune the VM's snapshots"))
        if state != "present" and (p.get("keep_last") is not None or p.get("max_age") is not None):
            raise InvalidInputError("keep_last and max_age prune snapshots with state=present, not with state=%s" % state)
        if p.get("keep_last") is not None and p["keep_last"] < 0:
            raise InvalidInputError("keep_last: must be 0 or more, got %r" % p["keep_last"])
        parse_duration(p.get("max_age"), "max_age")
        if p.get("memory") and p.get("disk_only"):
            raise InvalidInputError("memory and disk_only exclude each other: a disk_only snapshot has no memory state")
        if p.get("quiesce") and not p.get("disk_only"):
            raise InvalidInputError("quiesce: libvirt quiesces the guest's file systems only for disk_only snapshots; add disk_only: true")
        if p.get("revert_state") is not None and state != "reverted":
            raise InvalidInputError("revert_state: only used with state=reverted")

    # --- desired -------------------------------------------------------------------------------

    def desired(self, current):
        """``state``, and the snapshots that go: ``delete`` (names, in the order they are reported)
        and ``kept`` (``(name, reason)`` of those the retention rules spare)."""
        state = self.params.get("state") or "present"
        delete, kept = [], []
        if not current.get("vm_missing"):
            if state == "present":
                delete, kept = self._retention(current)
            elif state == "absent" and current["snapshot"] is not None:
                delete = [self.name]
                if self.params.get("children"):
                    delete += [f["name"] for f in current["_snapshots"] if _checks.descends_from(f, self.name, current["_snapshots"])]
        return dict(state=state, delete=delete, kept=kept)

    # --- compare and plan ----------------------------------------------------------------------

    def compare(self, current, desired):
        # the plan decides; the tracker mirrors it for --diff (see diff_views)
        return DifferenceTracker()

    def plan(self, current, desired, diff, plan):
        state = self.params.get("state") or "present"
        if current.get("vm_missing"):
            if state == "present" and self.name is not None:
                plan.add("create snapshot %s of VM %s" % (self.name, self.vm_name))
            elif state == "reverted":
                plan.add("revert VM %s to snapshot %s" % (self.vm_name, self.name))
            return Outcome(deleted=[])
        calls = SnapshotCalls(self.ctx.conn, self._dom, self.vm_name, current["_model"])
        if state == "present":
            if self.name is not None:
                self._plan_present(current, plan, calls)
            self._plan_retention(current, desired, plan, calls)
        elif state == "reverted":
            self._plan_revert(current, plan, calls)
        else:
            self._plan_absent(current, desired, plan, calls)
        return Outcome(deleted=list(desired["delete"]))

    # present

    def _plan_present(self, current, plan, calls):
        existing = current["snapshot"]
        description = self.params.get("description")
        if existing is not None:
            self._warn_kind(existing, plan)
            if description is not None and description != existing["description"]:
                plan.add("set the description of snapshot %s of VM %s" % (self.name, self.vm_name),
                         calls.redefine_description(self.name, description))
            return
        memory, xml_root, flags = self._creation(current)
        kind = "external disk-only" if self.params.get("disk_only") else ("internal with memory" if memory else "internal disk")
        text = _xml.to_string(xml_root)
        plan.add("create %s snapshot %s of VM %s" % (kind, self.name, self.vm_name),
                 calls.create(self.name, text, flags, bool(self.params.get("disk_only"))),
                 undo=calls.delete_created(self.name))

    def _warn_kind(self, existing, plan):
        p = self.params
        if p.get("disk_only") is not None and bool(p["disk_only"]) != existing["disk_only"]:
            plan.warn("snapshot %s exists and is %sa disk_only snapshot; it was left as it is"
                      % (self.name, "" if existing["disk_only"] else "not "))
        if p.get("memory") is not None and bool(p["memory"]) != existing["memory"]:
            plan.warn("snapshot %s exists %s memory; it was left as it is"
                      % (self.name, "with" if existing["memory"] else "without"))

    def _creation(self, current):
        """(memory, XML, flags) for the new snapshot, after checking it can be made."""
        return _checks.creation(self.ctx.conn, self.params, self.vm_name, current["_model"], current)

    # retention

    def _retention(self, current):
        """(names the retention rules delete, oldest first; [(name, why kept)] of those they spare)."""
        keep_last = self.params.get("keep_last")
        max_age = parse_duration(self.params.get("max_age"), "max_age")
        if keep_last is None and max_age is None:
            return [], []
        pattern = self.params.get("retention_pattern") or "*"
        now = self._clock()
        candidates = [f for f in current["_snapshots"] if fnmatch.fnmatchcase(f["name"], pattern)]
        newest_first = sorted(candidates, key=lambda f: (f["created"], f["name"]), reverse=True)
        created_now = self.name is not None and current["snapshot"] is None and fnmatch.fnmatchcase(self.name, pattern)
        keep_slots = None if keep_last is None else max(keep_last - (1 if created_now else 0), 0)
        doomed, kept = [], []
        for index, facts in enumerate(newest_first):
            kept_by_count = keep_slots is not None and index < keep_slots
            kept_by_age = max_age is not None and now - facts["created"] <= max_age
            if keep_last is None:
                keep = kept_by_age
            elif max_age is None:
                keep = kept_by_count
            else:
                keep = kept_by_count or kept_by_age
            if keep or facts["name"] == self.name:
                continue
            if facts["current"] and not self.params.get("prune_current"):
                kept.append((facts["name"], "it is the current snapshot (prune_current: true deletes it too)"))
                continue
            why = _checks.unmergeable(facts, current, self.vm_name)
            if why:
                kept.append((facts["name"], why))
                continue
            doomed.append(facts["name"])
        return list(reversed(doomed)), kept

    def _plan_retention(self, current, desired, plan, calls):
        for name, why in desired["kept"]:
            plan.warn("kept snapshot %s although the retention rules would delete it: %s" % (name, why))
        by_name = dict((f["name"], f) for f in current["_snapshots"])
        for name in desired["delete"]:  # oldest first
            facts = by_name[name]
            _checks.check_deletable(self.ctx.conn, self.vm_name, facts, current["_model"], current["_snapshots"])
            plan.add("delete snapshot %s of VM %s (retention)" % (name, self.vm_name),
                     calls.delete([name], external=facts["external"]))

    # revert

    def _plan_revert(self, current, plan, calls):
        facts = current["snapshot"]
        if facts is None:
            raise NotFoundError("name: VM %s has no snapshot %r to revert to (it has: %s)"
                                % (self.vm_name, self.name, ", ".join(current["snapshots"]) or "none"))
        if facts["external"] and self.ctx.conn.getLibVersion() < EXTERNAL_REVERT_VERSION:
            raise ConflictError("snapshot %s is an external (disk_only) snapshot; libvirt reverts to those from version "
                                "9.9.0 on, and this hypervisor runs %s" % (self.name, version_string(self.ctx.conn.getLibVersion())))
        wanted = self.params.get("revert_state") or facts["vm_state"]
        if facts["current"] and current["reverted_to"] == self.name and current["vm_state"] == wanted:
            return
        if not facts["external"]:
            _checks.refuse_revert_with_checkpoints(self.ctx.conn, self.vm_name, self.name)
        plan.add("revert VM %s to snapshot %s (%s)" % (self.vm_name, self.name, wanted),
                 calls.revert(self.name, wanted, facts["memory"]))

    # absent

    def _plan_absent(self, current, desired, plan, calls):
        facts = current["snapshot"]
        if facts is None:
            return
        snapshots = current["_snapshots"]
        by_name = dict((f["name"], f) for f in snapshots)
        doomed = [facts] + [by_name[n] for n in desired["delete"][1:]]
        if not self.params.get("children") and _checks.unmergeable(facts, current, self.vm_name):
            raise ConflictError("snapshot %s of VM %s cannot be deleted now: %s; or delete it with children: true (its "
                                "descendants go too)" % (self.name, self.vm_name, _checks.unmergeable(facts, current, self.vm_name)))
        for item in doomed:
            _checks.check_deletable(self.ctx.conn, self.vm_name, item, current["_model"], snapshots)
        label = "delete snapshot %s of VM %s" % (self.name, self.vm_name)
        if len(doomed) > 1:
            label += " and its descendants %s" % ", ".join(f["name"] for f in doomed[1:])
        # the deepest descendants first, so each is a leaf when it goes (libvirt 9.0 deletes external
        # snapshots one by one only: VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN is "not supported" for them)
        order = [f["name"] for f in sorted(doomed[1:], key=lambda f: _checks.depth(f, snapshots), reverse=True)]
        plan.add(label, calls.delete(order + [self.name], external=any(f["external"] for f in doomed)))

    # --- results -------------------------------------------------------------------------------

    def predict(self, current, desired):
        state = self.params.get("state") or "present"
        names = [n for n in current["snapshots"] if n not in desired["delete"]]
        predicted = dict(current, snapshots=names, snapshot=current["snapshot"])
        if state == "present" and self.name is not None:
            if current["snapshot"] is None:
                predicted["snapshots"] = names + [self.name]
                predicted["current"] = self.name
                predicted["snapshot"] = dict(name=self.name, description=self.params.get("description") or "",
                                             vm_state=current["vm_state"], current=True,
                                             disk_only=bool(self.params.get("disk_only")))
            elif self.params.get("description") is not None:
                predicted["snapshot"] = dict(current["snapshot"], description=self.params["description"])
        elif state == "reverted" and current["snapshot"] is not None:
            predicted["current"] = self.name
            predicted["vm_state"] = self.params.get("revert_state") or current["snapshot"]["vm_state"]
            predicted["snapshot"] = dict(current["snapshot"], current=True)
        elif state == "absent":
            predicted["snapshot"] = None
            if current["current"] in desired["delete"]:
                predicted["current"] = None
        return predicted

    def _view(self, state):
        view = dict(vm_state=state["vm_state"], current=state["current"], snapshots=list(state["snapshots"]))
        if self.name is not None:
            snap = state["snapshot"]
            view["snapshot"] = ABSENT if snap is None else dict(name=snap["name"], description=snap.get("description", ""))
        return view

    def diff_views(self, current, desired):
        return self._view(current), self._view(self.predict(current, desired))

    def result(self, state, outcome):
        return dict(
            vm=self.vm_name,
            vm_state=state["vm_state"],
            current=state["current"],
            snapshot=state["snapshot"],
            snapshots=list(state["snapshots"]),
            deleted=list(outcome.values.get("deleted") or []) if outcome is not None else [],
        )
