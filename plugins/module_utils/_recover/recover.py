# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``vm_recover``: VMs of a failed hypervisor defined and started on this one, from the definitions
``vm_keep`` kept of them (:mod:`.store`), with the same disks, UUID and MAC addresses.

Before anything is read, two refusals: the operator has not confirmed that the failed hypervisor is
fenced (``fenced``), or its libvirt still answers at ``failed_uri`` (:mod:`.probe`).  A host that
still runs a VM, or still writes its disk, while the same VM starts from the same disk elsewhere
corrupts that disk.

Per VM named in ``names``: defined here when no VM of its UUID is (refused when another VM has its
name), set to start with the host when it did on the failed one, and started when it ran there when
it was kept.  A VM of that UUID already here is left defined as it is (a second run changes nothing);
it is only started if it should run and does not.  A failed start undoes the definition this run made.
Every run returns ``kept``, what placement needs of every kept VM, so the same module with no names
is the reader the role places from.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import COMMON_ARGS, libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import DifferenceTracker
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.kind import Kind
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_vm
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Resource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.timeouts import timeout_seconds
from ansible_collections.virtops.libvirt.plugins.module_utils._recover import probe as _probe
from ansible_collections.virtops.libvirt.plugins.module_utils._recover import store as _store

_UNDEFINE_KEEP_NVRAM = flag("VIR_DOMAIN_UNDEFINE_KEEP_NVRAM", 8)
#: metadata key of a VM's anti-affinity groups (``_cluster.placement.ANTI_AFFINITY_KEY``; not imported, so
#: that the module does not ship placement)
ANTI_AFFINITY_KEY = "anti_affinity"
PROBE_TIMEOUT = 10


def refuse_unless_down(failed_host, fenced, answer, detail, uri):
    """The two refusals, in this order; returns None when recovery may go on."""
    if not fenced:
        raise InvalidInputError(
            "recovery of %s refused: fencing is not confirmed. Power %s off or cut it from the shared storage, then "
            "set fenced: true (a host that still writes a disk while its VM starts elsewhere corrupts the disk)"
            % (failed_host, failed_host), failed_host=failed_host)
    if answer == _probe.ANSWERS:
        raise ConflictError("recovery of %s refused: its libvirt answers at %s, so it is not down%s"
                            % (failed_host, uri, " (%s)" % detail if detail else ""), failed_host=failed_host)
    if answer != _probe.DOWN:
        raise ConflictError("recovery of %s refused: cannot tell whether it is down, connecting to %s failed with: %s"
                            % (failed_host, uri, detail), failed_host=failed_host)


def kept_view(name, entry, summary):
    """What placement and the report need of one kept VM."""
    return dict(name=name, uuid=entry["uuid"], vcpus=summary["vcpus"], memory=summary["memory"], arch=summary["arch"],
                pool=entry["pool"], anti_affinity=(summary.get("metadata") or {}).get(ANTI_AFFINITY_KEY) or None,
                active=entry["active"], autostart=entry["autostart"])


def wanted_state(entry):
    return "running" if entry["active"] else "stopped"


class RecoverResource(Resource):
    kind = "recovery of"

    @property
    def name(self):
        return self.params.get("failed_host")

    def _store(self):
        """``(entries, texts, kept)`` of the failed host's store."""
        path = _store.check_path(self.params.get("path"))
        entries = _store.read_index(path, required=True)
        texts, kept = {}, []
        for vm_name in sorted(entries):
            texts[vm_name], summary = _store.read_definition(path, vm_name, entries[vm_name])
            kept.append(kept_view(vm_name, entries[vm_name], summary))
        return entries, texts, kept

    def _here(self, vm_name, uuid):
        """``None`` (no such VM here) or ``'running'``/``'stopped'`` of the VM of ``uuid``."""
        conn = self.ctx.conn
        try:
            dom = conn.lookupByUUIDString(uuid)
        except libvirt.libvirtError:
            dom = None
        if dom is None:
            other = find_vm(conn, vm_name)
            if other is not None:
                raise ConflictError("%s: a different VM named %s (uuid %s) exists on this host; %s's VM (uuid %s) is not "
                                    "defined over it" % (self.ctx.uri, vm_name, other.UUIDString(), self.name, uuid))
            return None
        with libvirt_errors("reading VM '%s'" % vm_name):
            return "running" if dom.isActive() else "stopped"

    def read(self):
        timeout = timeout_seconds(self.params.get("probe_timeout"), "probe_timeout", PROBE_TIMEOUT)
        uri = self.params.get("failed_uri")
        answer, detail = _probe.probe(uri, timeout) if self.params.get("fenced") else (None, "")
        refuse_unless_down(self.name, self.params.get("fenced"), answer, detail, uri)
        entries, texts, kept = self._store()
        missing = [n for n in self.params.get("names") or () if n not in entries]
        if missing:
            raise NotFoundError("%s: not among the kept definitions of %s: %s (kept: %s)"
                                % (self.params.get("path"), self.name, ", ".join(missing), ", ".join(sorted(entries)) or "none"))
        vms = dict((n, self._here(n, entries[n]["uuid"])) for n in self.params.get("names") or ())
        return dict(vms=vms, entries=entries, texts=texts, kept=kept, probe=detail)

    def desired(self, current):
        return dict((n, wanted_state(current["entries"][n])) for n in current["vms"])

    def compare(self, current, desired):
        tracker = DifferenceTracker()
        for vm_name in sorted(desired):
            have = current["vms"][vm_name]
            if have is None or (desired[vm_name] == "running" and have != "running"):
                tracker.add(("vms", vm_name), have or "absent", desired[vm_name])
        return tracker

    def plan(self, current, desired, diff, plan):
        for path, _before, _after in diff:
            self._plan_vm(path[1], current, desired[path[1]], plan)
        return None

    def _plan_vm(self, vm_name, current, want, plan):
        entry = current["entries"][vm_name]
        conn = self.ctx.conn

        def lookup():
            with libvirt_errors("looking up VM '%s'" % vm_name):
                return conn.lookupByUUIDString(entry["uuid"])

        if current["vms"][vm_name] is None:
            def define():
                with libvirt_errors("defining VM '%s' from the definition kept of %s" % (vm_name, self.name)):
                    dom = conn.defineXML(current["texts"][vm_name])
                    if entry["autostart"]:
                        dom.setAutostart(1)

            def undefine():
                with libvirt_errors("undefining VM '%s'" % vm_name):
                    lookup().undefineFlags(_UNDEFINE_KEEP_NVRAM)

            plan.add("define %s from the definition kept of %s%s" % (vm_name, self.name, ", autostart" if entry["autostart"] else ""),
                     action=define, undo=undefine)
        if want == "running":
            def start():
                with libvirt_errors("starting VM '%s'" % vm_name):
                    lookup().create()

            def stop():
                with libvirt_errors("stopping VM '%s'" % vm_name):
                    dom = lookup()
                    if dom.isActive():
                        dom.destroy()

            plan.add("start %s" % vm_name, action=start, undo=stop)

    def predict(self, current, desired):
        return dict(current, vms=dict((n, desired.get(n) if current["vms"][n] is None or desired.get(n) == "running"
                                       else current["vms"][n]) for n in current["vms"]))

    def refresh(self):
        current = self.read()
        return current

    def diff_views(self, current, desired):
        before = dict((n, s or "absent") for n, s in sorted(current["vms"].items()))
        after = dict((n, s or "absent") for n, s in sorted(self.predict(current, desired)["vms"].items()))
        return dict(vms=before), dict(vms=after)

    def result(self, state, outcome):
        return dict(failed_host=self.name, probe=state["probe"], kept=state["kept"],
                    vms=[dict(name=n, state=s or "absent") for n, s in sorted(state["vms"].items())])


RECOVER = Kind(
    "vm_recover",
    dict(
        COMMON_ARGS,
        failed_host=dict(type="str", required=True),
        failed_uri=dict(type="str", required=True),
        path=dict(type="path", required=True),
        fenced=dict(type="bool", default=False),
        probe_timeout=dict(type="int", default=PROBE_TIMEOUT),
        names=dict(type="list", elements="str", default=[]),
    ),
    RecoverResource,
)
