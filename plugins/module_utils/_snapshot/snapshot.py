# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Snapshots of a VM: the ``<domainsnapshot>`` model, reading them back, and ``snapshot`` itself.

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
import re
import time
from datetime import datetime, timezone

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.defined import lookup_or_none
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import ABSENT, DifferenceTracker
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._host.facts import run_state, state_word
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Resource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import parse_duration
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import dependants

STATES = ("present", "reverted", "absent")
REVERT_STATES = ("running", "paused", "stopped")

#: namespace of the revert marker kept in the VM's <metadata> (apart from the ``vm`` module's own)
REVERT_NS = "https://virtops.dev/xmlns/libvirt/snapshot/1.0"
REVERT_KEY = "virtops-snapshot"
#: libvirt reverts to external snapshots from this version on (9.9.0)
EXTERNAL_REVERT_VERSION = 9009000

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+@:-]*$")
_MAX_NAME = 100


def _flag(name, default=0):
    return getattr(libvirt, name, default) if libvirt else default


def validate_name(name, what="name"):
    """Snapshot names become file names (overlays, libvirt's metadata): keep them plain."""
    if not isinstance(name, str) or not name:
        raise InvalidInputError("%s: a snapshot name must not be empty" % what)
    if len(name) > _MAX_NAME:
        raise InvalidInputError("%s: %r is longer than %d characters" % (what, name[:20] + "...", _MAX_NAME))
    if not _NAME_RE.match(name):
        raise InvalidInputError(
            "%s: %r is not a valid snapshot name (letters, digits and . _ + @ : -, not starting with . or -)" % (what, name))
    return name


# --- XML ---------------------------------------------------------------------------------------


def build_snapshot_xml(name, description=None, memory=False, disks=None):
    """``<domainsnapshot>`` for a new snapshot.

    ``disks`` is None (libvirt's defaults: internal for every writable disk) or a list of
    ``{"name": "vda", "snapshot": "external"|"internal"|"no", "file": overlay path}``.
    """
    root = _xml.element("domainsnapshot")
    _xml.sub(root, "name", name)
    if description:
        _xml.sub(root, "description", description)
    _xml.sub(root, "memory", attrs=dict(snapshot="internal" if memory else "no"))
    if disks is not None:
        container = _xml.sub(root, "disks")
        for disk in disks:
            node = _xml.sub(container, "disk", attrs=dict(name=disk["name"], snapshot=disk["snapshot"]))
            if disk["snapshot"] == "external":
                node.set("type", "file")
                _xml.sub(node, "driver", attrs=dict(type="qcow2"))
                _xml.sub(node, "source", attrs=dict(file=disk["file"]))
    return root


def parse_snapshot_xml(text):
    """The facts of a ``<domainsnapshot>`` document as a plain dict."""
    root = _xml.parse(text, "snapshot XML")
    created = int(_xml.find_text(root, "creationTime", "0") or 0)
    disks = []
    for node in root.findall("disks/disk"):
        source = node.find("source")
        disks.append(dict(
            name=node.get("name"),
            snapshot=node.get("snapshot") or "internal",
            file=source.get("file") if source is not None else None,
        ))
    memory_node = root.find("memory")
    memory_mode = memory_node.get("snapshot") if memory_node is not None else None
    state = _xml.find_text(root, "state", "")
    external = any(d["snapshot"] == "external" for d in disks) or memory_mode == "external"
    if memory_mode is None:
        memory_mode = "internal" if state in ("running", "paused", "blocked") and not external else "no"
    domain = root.find("domain")
    return dict(
        name=_xml.find_text(root, "name"),
        description=_xml.find_text(root, "description", "") or "",
        state=state,
        vm_state=_vm_word(state),
        parent=_xml.find_text(root, "parent/name"),
        created=created,
        creation_time=_iso(created),
        memory=memory_mode != "no",
        external=external,
        disk_only=external and memory_mode == "no",
        disks=disks,
        domain=domain,
    )


def _vm_word(snapshot_state):
    """The run state a revert restores, in ``vm``'s words."""
    if snapshot_state in ("running", "blocked", "paused", "pmsuspended"):
        return state_word(snapshot_state)
    return "stopped"


def _iso(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if epoch else None


def snapshot_facts(snap):
    """One snapshot as the modules return it (``domain`` left out)."""
    with libvirt_errors("reading snapshot '%s'" % snap.getName()):
        facts = parse_snapshot_xml(snap.getXMLDesc(0))
        facts["current"] = bool(snap.isCurrent(0))
        facts["children"] = sorted(c.getName() for c in snap.listAllChildren(0))
    facts.pop("domain", None)
    return facts


def list_snapshots(dom):
    """Every snapshot of ``dom``, oldest first (then by name)."""
    with libvirt_errors("listing the snapshots of VM '%s'" % dom.name()):
        snaps = dom.listAllSnapshots(0)
    facts = [snapshot_facts(s) for s in snaps]
    return sorted(facts, key=lambda f: (f["created"], f["name"]))


def snapshot_tree(facts):
    """The snapshots as a forest: ``[{"name", "current", "children": [...]}]`` from the roots down."""
    by_name = dict((f["name"], f) for f in facts)

    def node(name):
        f = by_name[name]
        return dict(name=name, current=f["current"], children=[node(c) for c in f["children"] if c in by_name])

    return [node(f["name"]) for f in facts if not f["parent"] or f["parent"] not in by_name]


def lookup_vm(conn, name, what="vm"):
    _domain.validate_name(name)
    dom = lookup_or_none(conn.lookupByName, name, libvirt.VIR_ERR_NO_DOMAIN, "VM")
    if dom is None:
        raise NotFoundError("%s: VM %r does not exist" % (what, name))
    return dom


def lookup_snapshot(dom, name):
    return lookup_or_none(lambda n: dom.snapshotLookupByName(n, 0), name, libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT, "snapshot")


def gather_snapshot_info(ctx):
    """``snapshot_info``: the snapshots of one VM, as a list and as a tree."""
    dom = lookup_vm(ctx.conn, ctx.params["vm"])
    facts = list_snapshots(dom)
    name = ctx.params.get("name")
    if name is not None:
        validate_name(name)
        if name not in [f["name"] for f in facts]:
            raise NotFoundError("name: VM %r has no snapshot %r (it has: %s)"
                                % (dom.name(), name, ", ".join(f["name"] for f in facts) or "none"))
    current = [f["name"] for f in facts if f["current"]]
    return dict(
        changed=False,
        vm=dom.name(),
        vm_state=run_state(dom),
        current=current[0] if current else None,
        count=len(facts),
        snapshots=[f for f in facts if name is None or f["name"] == name],
        tree=snapshot_tree(facts),
    )


# --- the module ----------------------------------------------------------------------------------


class SnapshotResource(Resource):
    """``snapshot``: one named snapshot of a VM (present / reverted / absent) plus retention."""

    kind = "snapshot"

    def __init__(self, ctx, clock=time.time):
        super(SnapshotResource, self).__init__(ctx)
        self._clock = clock
        self._dom = None
        self._model = None
        self._snapshots = []
        self._deleting = []

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
            self._model = _domain.model_from_xml(dom.XMLDesc(0))
            marker = self._revert_marker()
        self._snapshots = list_snapshots(dom)
        by_name = dict((f["name"], f) for f in self._snapshots)
        current = [f["name"] for f in self._snapshots if f["current"]]
        return dict(
            snapshot=by_name.get(self.name) if self.name else None,
            snapshots=[f["name"] for f in self._snapshots],
            current=current[0] if current else None,
            vm_state=run_state(dom),
            active=active,
            reverted_to=marker,
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
            text = self._dom.metadata(_flag("VIR_DOMAIN_METADATA_ELEMENT", 2), REVERT_NS, 0)
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
        self._max_age = parse_duration(p.get("max_age"), "max_age")
        if p.get("memory") and p.get("disk_only"):
            raise InvalidInputError("memory and disk_only exclude each other: a disk_only snapshot has no memory state")
        if p.get("quiesce") and not p.get("disk_only"):
            raise InvalidInputError("quiesce: libvirt quiesces the guest's file systems only for disk_only snapshots; add disk_only: true")
        if p.get("revert_state") is not None and state != "reverted":
            raise InvalidInputError("revert_state: only used with state=reverted")

    # --- desired -------------------------------------------------------------------------------

    def desired(self, current):
        state = self.params.get("state") or "present"
        if state == "absent":
            return None
        return dict(state=state)

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
            return
        if state == "present":
            if self.name is not None:
                self._plan_present(current, plan)
            self._plan_retention(current, plan)
        elif state == "reverted":
            self._plan_revert(current, plan)
        else:
            self._plan_absent(current, plan)

    # present

    def _plan_present(self, current, plan):
        existing = current["snapshot"]
        description = self.params.get("description")
        if existing is not None:
            self._warn_kind(existing, plan)
            if description is not None and description != existing["description"]:
                plan.add("set the description of snapshot %s of VM %s" % (self.name, self.vm_name),
                         self._redefine_description(description))
            return
        memory, xml_root, flags = self._creation(current)
        kind = "external disk-only" if self.params.get("disk_only") else ("internal with memory" if memory else "internal disk")
        text = _xml.to_string(xml_root)
        plan.add("create %s snapshot %s of VM %s" % (kind, self.name, self.vm_name),
                 self._create(text, flags), undo=self._delete_created)

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
        p = self.params
        active = current["active"]
        disk_only = bool(p.get("disk_only"))
        memory = p.get("memory")
        if memory is None:
            memory = active and not disk_only
        if memory and not active:
            raise ConflictError("memory: VM %s is %s, so there is no memory state to save; leave memory unset or false"
                                % (self.vm_name, current["vm_state"]))
        if active and not memory and not disk_only:
            raise InvalidInputError("memory: an internal snapshot of a running VM always includes its memory; for a "
                                    "snapshot of the disks alone use disk_only: true (an external snapshot)")
        if p.get("quiesce") and not active:
            raise ConflictError("quiesce: VM %s is %s; only a running guest's agent can quiesce" % (self.vm_name, current["vm_state"]))
        writable = [d for d in self._model["disks"] if not d.get("readonly")]
        if not writable:
            raise ConflictError("VM %s has no writable disk to snapshot" % self.vm_name)
        flags = 0
        if disk_only:
            disks = []
            for disk in self._model["disks"]:
                if disk.get("readonly"):
                    disks.append(dict(name=disk["target"], snapshot="no"))
                    continue
                if not disk.get("path"):
                    raise InvalidInputError("disk_only: disk %s of VM %s is not a file, so it cannot get an overlay file"
                                            % (disk["target"], self.vm_name))
                disks.append(dict(name=disk["target"], snapshot="external", file=self._overlay_path(disk)))
            for cdrom in self._model.get("cdroms") or []:
                disks.append(dict(name=cdrom["target"], snapshot="no"))
            flags |= _flag("VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY", 16) | _flag("VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC", 128)
            if p.get("quiesce"):
                flags |= _flag("VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE", 64)
        else:
            for disk in writable:
                if (disk.get("format") or "raw") != "qcow2":
                    raise InvalidInputError(
                        "VM %s: disk %s (%s) is %s; internal snapshots need every writable disk in qcow2 "
                        "(use disk_only: true for an external snapshot)"
                        % (self.vm_name, disk["target"], disk.get("path") or "no file", disk.get("format") or "raw"))
            disks = None
        return memory, build_snapshot_xml(self.name, p.get("description"), memory=memory, disks=disks), flags

    def _overlay_path(self, disk):
        directory = disk["path"].rsplit("/", 1)[0] if "/" in disk["path"] else "."
        path = "%s/%s-%s.%s.qcow2" % (directory, self.vm_name, disk["target"], self.name)
        if self._path_in_use(path):
            raise ConflictError("disk_only: the overlay file %s for disk %s already exists" % (path, disk["target"]))
        return path

    def _path_in_use(self, path):
        try:
            self.ctx.conn.storageVolLookupByPath(path)
            return True
        except libvirt.libvirtError:
            return False

    def _create(self, text, flags):
        def call():
            with libvirt_errors("creating snapshot %s of VM %s" % (self.name, self.vm_name)):
                self._dom.snapshotCreateXML(text, flags)
            if self.params.get("disk_only"):
                self._refresh_pools()

        return call

    def _delete_created(self):
        snap = lookup_snapshot(self._dom, self.name)
        if snap is not None:
            with libvirt_errors("deleting snapshot %s of VM %s again" % (self.name, self.vm_name)):
                snap.delete(0)

    def _redefine_description(self, description):
        def call():
            with libvirt_errors("updating snapshot %s of VM %s" % (self.name, self.vm_name)):
                snap = self._dom.snapshotLookupByName(self.name, 0)
                is_current = snap.isCurrent(0)
                root = _xml.parse(snap.getXMLDesc(_flag("VIR_DOMAIN_SNAPSHOT_XML_SECURE", 1)), "snapshot XML")
                node = root.find("description")
                if node is None:
                    node = _xml.element("description")
                    root.insert(1, node)
                node.text = description
                flags = _flag("VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE", 1)
                if is_current:
                    flags |= _flag("VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT", 2)
                self._dom.snapshotCreateXML(_xml.to_string(root), flags)

        return call

    def _refresh_pools(self):
        """Let the pools that hold the VM's disks see overlays that came or went."""
        try:
            pools = self.ctx.conn.listAllStoragePools(_flag("VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE", 2))
        except libvirt.libvirtError:
            return
        dirs = set(d["path"].rsplit("/", 1)[0] for d in self._model["disks"] if d.get("path"))
        for pool in pools:
            try:
                target = _xml.find_text(_xml.parse(pool.XMLDesc(0)), "target/path")
                if target in dirs:
                    pool.refresh(0)
            except libvirt.libvirtError:
                continue

    # retention

    def _plan_retention(self, current, plan):
        keep_last = self.params.get("keep_last")
        if keep_last is None and self._max_age is None:
            return
        pattern = self.params.get("retention_pattern") or "*"
        now = self._clock()
        candidates = [f for f in self._snapshots if fnmatch.fnmatchcase(f["name"], pattern)]
        newest_first = sorted(candidates, key=lambda f: (f["created"], f["name"]), reverse=True)
        created_now = self.name is not None and current["snapshot"] is None and fnmatch.fnmatchcase(self.name, pattern)
        keep_slots = None if keep_last is None else max(keep_last - (1 if created_now else 0), 0)
        doomed = []
        for index, facts in enumerate(newest_first):
            kept_by_count = keep_slots is not None and index < keep_slots
            kept_by_age = self._max_age is not None and now - facts["created"] <= self._max_age
            if keep_last is None:
                kept = kept_by_age
            elif self._max_age is None:
                kept = kept_by_count
            else:
                kept = kept_by_count or kept_by_age
            if kept or facts["name"] == self.name:
                continue
            if facts["current"] and not self.params.get("prune_current"):
                plan.warn("kept snapshot %s although the retention rules would delete it: it is the current snapshot "
                          "(prune_current: true deletes it too)" % facts["name"])
                continue
            if self._unmergeable(facts, current):
                plan.warn("kept snapshot %s although the retention rules would delete it: %s"
                          % (facts["name"], self._unmergeable(facts, current)))
                continue
            doomed.append(facts)
        for facts in reversed(doomed):  # oldest first
            self._check_deletable(facts)
            self._deleting.append(facts["name"])
            plan.add("delete snapshot %s of VM %s (retention)" % (facts["name"], self.vm_name),
                     self._delete([facts["name"]], external=facts["external"]))

    # revert

    def _plan_revert(self, current, plan):
        facts = current["snapshot"]
        if facts is None:
            raise NotFoundError("name: VM %s has no snapshot %r to revert to (it has: %s)"
                                % (self.vm_name, self.name, ", ".join(current["snapshots"]) or "none"))
        if facts["external"] and self.ctx.conn.getLibVersion() < EXTERNAL_REVERT_VERSION:
            raise ConflictError("snapshot %s is an external (disk_only) snapshot; libvirt reverts to those from version "
                                "9.9.0 on, and this hypervisor runs %s" % (self.name, _version(self.ctx.conn.getLibVersion())))
        wanted = self.params.get("revert_state") or facts["vm_state"]
        if facts["current"] and current["reverted_to"] == self.name and current["vm_state"] == wanted:
            return
        plan.add("revert VM %s to snapshot %s (%s)" % (self.vm_name, self.name, wanted), self._revert(wanted, facts["memory"]))

    def _revert(self, wanted, memory):
        def call():
            flags = 0
            if wanted == "running":
                flags = _flag("VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING", 1)
            elif wanted == "paused" or (wanted == "stopped" and memory):
                # a snapshot with memory is restored paused, then stopped: the guest never runs
                flags = _flag("VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED", 2)
            with libvirt_errors("reverting VM %s to snapshot %s" % (self.vm_name, self.name)):
                snap = self._dom.snapshotLookupByName(self.name, 0)
                self._dom.revertToSnapshot(snap, flags)
                # make sure of the run state, whatever the driver did with the flags
                have = run_state(self._dom)
                if wanted == "stopped" and self._dom.isActive():
                    self._dom.destroy()
                elif wanted == "running" and have == "paused":
                    self._dom.resume()
                elif wanted == "running" and not self._dom.isActive():
                    self._dom.create()
                elif wanted == "paused" and have == "running":
                    self._dom.suspend()
                elif wanted == "paused" and not self._dom.isActive():
                    self._dom.createWithFlags(_flag("VIR_DOMAIN_START_PAUSED", 1))
                self._mark_reverted()

        return call

    def _mark_reverted(self):
        node = _xml.element("snapshot", attrs={"reverted-to": self.name})
        flags = _flag("VIR_DOMAIN_AFFECT_CONFIG", 2) if self._dom.isPersistent() else 0
        if self._dom.isActive():
            flags |= _flag("VIR_DOMAIN_AFFECT_LIVE", 1)
        self._dom.setMetadata(_flag("VIR_DOMAIN_METADATA_ELEMENT", 2), _xml.to_string(node, pretty=False),
                              REVERT_KEY, REVERT_NS, flags)

    # absent

    def _plan_absent(self, current, plan):
        facts = current["snapshot"]
        if facts is None:
            return
        children = bool(self.params.get("children"))
        doomed = [facts]
        if children:
            doomed += [f for f in self._snapshots if self._descends_from(f, self.name)]
        elif self._unmergeable(facts, current):
            raise ConflictError("snapshot %s of VM %s cannot be deleted now: %s; or delete it with children: true (its "
                                "descendants go too)" % (self.name, self.vm_name, self._unmergeable(facts, current)))
        for item in doomed:
            self._check_deletable(item)
        self._deleting.extend(f["name"] for f in doomed)
        label = "delete snapshot %s of VM %s" % (self.name, self.vm_name)
        if len(doomed) > 1:
            label += " and its descendants %s" % ", ".join(f["name"] for f in doomed[1:])
        # the deepest descendants first, so each is a leaf when it goes (libvirt 9.0 deletes external
        # snapshots one by one only: VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN is "not supported" for them)
        order = [f["name"] for f in sorted(doomed[1:], key=self._depth, reverse=True)]
        plan.add(label, self._delete(order + [self.name], external=any(f["external"] for f in doomed)))

    def _depth(self, facts):
        by_name = dict((f["name"], f) for f in self._snapshots)
        depth, parent = 0, facts["parent"]
        while parent in by_name:
            depth, parent = depth + 1, by_name[parent]["parent"]
        return depth

    def _unmergeable(self, facts, current):
        """Why libvirt cannot delete (merge) this external snapshot now, or None.

        Found on libvirt 9.0: an external snapshot that has child snapshots is merged while the VM
        runs (a block commit), but of a stopped VM it fails with libvirt's internal "could not find
        base disk source in disk source chain".  Leaves (no children) are deleted in either state.
        """
        if not facts["external"] or not facts["children"] or current["active"]:
            return None
        return ("it is an external (disk_only) snapshot with child snapshots (%s) and VM %s is %s; libvirt merges such a "
                "snapshot into the file below only while the VM runs: start the VM and run the task again"
                % (", ".join(facts["children"]), self.vm_name, current["vm_state"]))

    def _descends_from(self, facts, ancestor):
        by_name = dict((f["name"], f) for f in self._snapshots)
        parent = facts["parent"]
        while parent:
            if parent == ancestor:
                return True
            parent = by_name[parent]["parent"] if parent in by_name else None
        return False

    def _check_deletable(self, facts):
        """An external snapshot's deletion writes its overlay into the file below: that file must
        not be the backing file of anything but this VM's own chain."""
        if not facts["external"]:
            return
        own = set(d.get("path") for d in self._model["disks"])
        own.update(d["file"] for f in self._snapshots for d in f["disks"] if d.get("file"))
        for disk in facts["disks"]:
            if not disk.get("file"):
                continue
            base = self._backing_of(disk["file"])
            if base is None:
                continue
            others = [v for v in dependants(self.ctx.conn, base) if not self._is_own(v, own)]
            if others:
                raise ConflictError(
                    "snapshot %s of VM %s: deleting it merges %s into %s, which is also the backing file of %s; "
                    "remove those first (for example linked clones made from this snapshot)"
                    % (facts["name"], self.vm_name, disk["file"], base, ", ".join(others)))

    def _backing_of(self, path):
        try:
            vol = self.ctx.conn.storageVolLookupByPath(path)
            root = _xml.parse(vol.XMLDesc(0))
        except libvirt.libvirtError:
            return None
        return _xml.find_text(root, "backingStore/path")

    def _is_own(self, pool_volume, own_paths):
        pool_name, vol_name = pool_volume.split("/", 1)
        try:
            path = self.ctx.conn.storagePoolLookupByName(pool_name).storageVolLookupByName(vol_name).path()
        except libvirt.libvirtError:
            return False
        return path in own_paths

    def _delete(self, names, external):
        """Delete the snapshots ``names`` one by one, in this order."""
        def call():
            for name in names:
                with libvirt_errors("deleting snapshot %s of VM %s" % (name, self.vm_name)):
                    self._dom.snapshotLookupByName(name, 0).delete(0)
            if external:
                self._refresh_pools()

        return call

    # --- results -------------------------------------------------------------------------------

    def predict(self, current, desired):
        state = self.params.get("state") or "present"
        names = [n for n in current["snapshots"] if n not in self._deleting]
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
            if current["current"] in self._deleting:
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
            deleted=list(self._deleting),
        )


def _version(number):
    return "%d.%d.%d" % (number // 1000000, (number // 1000) % 1000, number % 1000)
