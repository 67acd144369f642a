# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Snapshots of a VM, read only: names, the ``<domainsnapshot>`` XML (built and parsed), the facts
of each snapshot and their tree, lookups, and ``snapshot_info``.  Nothing here changes anything;
the ``snapshot`` module's resource is in ``resource``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from datetime import datetime, timezone

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_vm, lookup_or_none
from ansible_collections.virtops.libvirt.plugins.module_utils._core.names import validate_object_name
from ansible_collections.virtops.libvirt.plugins.module_utils._host.facts import run_state, state_word

STATES = ("present", "reverted", "absent")
REVERT_STATES = ("running", "paused", "stopped")

#: namespace of the revert marker kept in the VM's <metadata> (apart from the ``vm`` module's own)
REVERT_NS = "https://virtops.dev/xmlns/libvirt/snapshot/1.0"
REVERT_KEY = "virtops-snapshot"
#: libvirt reverts to external snapshots from this version on (9.9.0)
EXTERNAL_REVERT_VERSION = 9009000

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+@:-]*$")
_MAX_NAME = 100


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


def snapshot_count(dom):
    """How many snapshots ``dom`` has (0 where the driver keeps none): the "has it snapshots?" question."""
    try:
        return int(dom.snapshotNum(0))
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == flag("VIR_ERR_NO_SUPPORT", 3):
            return 0
        with libvirt_errors("counting the snapshots of VM '%s'" % dom.name()):
            raise


def snapshot_tree(facts):
    """The snapshots as a forest: ``[{"name", "current", "children": [...]}]`` from the roots down."""
    by_name = dict((f["name"], f) for f in facts)

    def node(name):
        f = by_name[name]
        return dict(name=name, current=f["current"], children=[node(c) for c in f["children"] if c in by_name])

    return [node(f["name"]) for f in facts if not f["parent"] or f["parent"] not in by_name]


def lookup_vm(conn, name, what="vm"):
    validate_object_name(name, "VM")
    dom = find_vm(conn, name)
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
