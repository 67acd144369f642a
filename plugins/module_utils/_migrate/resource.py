# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Moving a VM to another hypervisor (the ``migrate`` module).

The module holds two connections: the source (``uri``, opened by the runner) and the destination
(``dest_uri``, opened here).  One run:

1. checks that the two URIs are two hypervisors (host UUIDs), finds the VM on both and decides
   (:func:`~.decide.decide`): nothing to do (the VM is already on the destination), a live migration
   of a running VM (peer to peer: the source libvirtd talks to ``peer_uri``), an offline move of a
   stopped one, or the removal of a stale source definition;
2. runs the pre-checks against the destination before anything moves (:class:`~.prechecks.Prechecks`):
   guest arch, virt type, machine type and emulator, CPU model, memory, snapshots and saved state,
   networks, and every disk: present on the destination, or (``copy_storage``) copyable there;
3. plans the side effects (:class:`~.actions.MigrationRun`), each with its undo: the destination
   volumes a storage copy needs are created by the module (and removed again if the migration fails),
   the maximum downtime is set (and restored), the live migration runs in a thread while the main
   thread follows the job (``jobStats``) and aborts it (``abortJob``) when ``timeout`` passes.

A stopped VM moves as its definition (libvirt's offline migration, driven over the module's own
two connections); its disks, when ``copy_storage`` asks for it, are copied through libvirt volume
streams first, since libvirt's offline migration does not copy storage.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import Connection, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import ABSENT, DifferenceTracker
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import (
    ConnectionFailedError,
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Outcome, Resource, reconcile
from ansible_collections.virtops.libvirt.plugins.module_utils._migrate.actions import MigrationRun
from ansible_collections.virtops.libvirt.plugins.module_utils._migrate.decide import (
    Decision,
    decide,
    find_domain,
    normalize,
    summary,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._migrate.prechecks import Prechecks


def _host_uuid(caps):
    return _xml.find_text(caps, "host/uuid")


class MigrationResource(Resource):
    """The VM's location: on the source (``uri``) or on the destination (``dest_uri``).

    ``desired`` carries the :class:`~.decide.Decision` for the ``current`` locations; ``plan`` returns
    an Outcome whose values are the run's ``mode``, ``checks``, ``disks`` (planned copies) and ``run``
    (the :class:`~.actions.MigrationRun` whose actions the plan holds, for ``duration`` and ``job``).
    """

    kind = "VM"

    def __init__(self, ctx, dest_conn):
        super(MigrationResource, self).__init__(ctx)
        self.opts = normalize(ctx.params)
        self.src = ctx.conn
        self.dst = dest_conn
        # what read() found besides the summaries: the capabilities and the VM objects on both hosts
        self.src_caps = self.dst_caps = None
        self._src_dom = None

    # --- read / desired / compare -----------------------------------------------------------

    def _caps(self, conn, where):
        with libvirt_errors("reading the capabilities of the %s" % where):
            return _xml.parse(conn.getCapabilities(), "host capabilities")

    def read(self):
        self.src_caps = self._caps(self.src, "source")
        self.dst_caps = self._caps(self.dst, "destination")
        src_uuid, dst_uuid = _host_uuid(self.src_caps), _host_uuid(self.dst_caps)
        if src_uuid and src_uuid == dst_uuid:
            raise InvalidInputError("dest_uri: %s and %s are the same hypervisor (host UUID %s)"
                                    % (self.opts["uri"], self.opts["dest_uri"], src_uuid))
        self._src_dom = find_domain(self.src, self.name, "source")
        dst_dom = find_domain(self.dst, self.name, "destination")
        return dict(source=summary(self._src_dom), destination=summary(dst_dom))

    def desired(self, current):
        try:
            decision = decide(self.name, current["source"], current["destination"], self.opts)
        except NotFoundError as exc:  # on neither host: in check mode an earlier task may create it
            self.ctx.assume(exc)
            decision = Decision("migrate", reason="assumed")
        return dict(host="destination", decision=decision)

    def compare(self, current, desired):
        tracker = DifferenceTracker()
        if desired["decision"].action != "none":
            before, after = self._views(current, desired)
            tracker.add(("source",), before["source"], after["source"])
            tracker.add(("destination",), before["destination"], after["destination"])
        return tracker

    def _views(self, current, desired):
        def word(entry):
            return ABSENT if entry is None else entry["state"]

        before = dict(source=word(current["source"]), destination=word(current["destination"]))
        predicted = self.predict(current, desired)
        return before, dict(source=word(predicted["source"]), destination=word(predicted["destination"]))

    def predict(self, current, desired):
        src, dst = current["source"], current["destination"]
        decision = desired["decision"]
        if decision.action == "none":
            return current
        if decision.action == "undefine_source":
            return dict(source=None, destination=dst)
        if src is None:  # assumed (check mode): an earlier task creates the VM
            return dict(source=None, destination=dict(uuid=None, state="migrated", active=None,
                                                      persistent=self.opts["persistent"]))
        moved = dict(src)
        moved["persistent"] = self.opts["persistent"] or not src["active"]
        left = None
        if not self.opts["undefine_source"] and src["persistent"]:
            left = dict(src, state="stopped", active=False)
        return dict(source=left, destination=moved)

    def diff_views(self, current, desired):
        return self._views(current, desired)

    # --- plan -------------------------------------------------------------------------------

    def plan(self, current, desired, diff, plan):
        decision = desired["decision"]
        outcome = Outcome(mode=decision.mode if decision.action == "migrate" else None, checks={}, disks=[], run=None)
        if decision.action == "none":
            return outcome
        run = outcome.values["run"] = MigrationRun(self.ctx, self.src, self.dst, self._src_dom, self.opts,
                                                   decision.mode)
        if decision.action == "undefine_source":
            plan.add("undefine the stopped definition of VM '%s' left on the source (it runs on the destination)"
                     % self.name, run.undefine_stale)
            return outcome
        if self._src_dom is None:  # assumed (check mode)
            plan.add("migrate VM '%s' %s" % (self.name, run.where()))
            return outcome
        checks = Prechecks(self.src, self.dst, self._src_dom, self.opts, decision.mode)
        checks.assume = self.ctx.assume
        outcome.values.update(checks=checks.run(self.src_caps, self.dst_caps), disks=checks.disks)
        for text in checks.warnings:
            plan.warn(text)
        if decision.reason:
            plan.warn(decision.reason)
        if decision.mode == "offline":
            self._plan_offline(run, checks, plan)
        else:
            self._plan_live(run, checks, current["source"], plan)
        if self.opts["remove_source_storage"]:
            for disk in checks.disks:
                if disk.action == "copy":
                    plan.add("delete the copied disk %s (%s) from the source" % (disk.target, disk.path),
                             run.remove_source(disk))
        return outcome

    def _plan_live(self, run, checks, source, plan):
        copies = [d for d in checks.disks if d.action == "copy"]
        for disk in copies:
            plan.add("create %s on the destination for the copy of disk %s (pool %s, %s, %d bytes%s)"
                     % (disk.path, disk.target, disk.pool_name, disk.format or "raw", disk.capacity or 0,
                        ", backing file %s" % disk.backing_path if disk.backing_path else ""),
                     run.create_volume(disk), run.delete_created(disk))
        if self.opts["max_downtime"]:
            plan.add("set the maximum downtime of VM '%s' to %d ms" % (self.name, self.opts["max_downtime"]),
                     run.set_downtime, run.restore_downtime)
        what = "live-migrate" if run.mode == "live" else "migrate (paused while its memory is copied)"
        storage = " with copy_storage: %s" % self.opts["copy_storage"] if copies else ""
        plan.add("%s VM '%s' %s%s, peer to peer via %s" % (what, self.name, run.where(), storage,
                                                           self.opts["peer_uri"]),
                 run.migrate_live(source, [d.target for d in copies]))

    def _plan_offline(self, run, checks, plan):
        for disk in checks.disks:
            plan.add("copy %s (disk %s%s) to the destination (pool %s, %s, %d bytes)"
                     % (disk.path, disk.target, ", backing file" if disk.action == "copy-backing" else "",
                        disk.pool_name, disk.format or "raw", disk.allocation or 0),
                     run.copy_offline(disk), run.delete_created(disk))
        plan.add("move the definition of the stopped VM '%s' %s%s" % (
            self.name, run.where(), "" if self.opts["undefine_source"] else " (the source keeps it too)"),
            run.migrate_offline)

    # --- result -----------------------------------------------------------------------------

    def refresh(self):
        return dict(source=summary(find_domain(self.src, self.name, "source")),
                    destination=summary(find_domain(self.dst, self.name, "destination")))

    def result(self, state, outcome):
        values = outcome.values
        run = values.get("run")
        dest = state["destination"] if state else None
        return dict(
            name=self.name,
            source=self.opts["uri"],
            destination=self.opts["dest_uri"],
            mode=values.get("mode"),
            duration=round(run.duration, 3) if run is not None else 0.0,
            checks=values.get("checks", {}),
            storage=[d.view() for d in values.get("disks", [])],
            job=run.job if run is not None else {},
            vm=dict(host="destination" if dest else ("source" if state and state["source"] else None),
                    state=(dest or (state or {}).get("source") or {}).get("state"),
                    persistent=(dest or {}).get("persistent")),
        )


def run_migration(ctx):
    """The ``migrate`` module: the source connection is ``ctx.conn``; the destination is opened here."""
    opts = normalize(ctx.params)
    try:
        dest = Connection(opts["dest_uri"])
        conn = dest.open()
    except ConnectionFailedError as exc:
        raise ConnectionFailedError("dest_uri: the destination hypervisor is not reachable: %s"
                                    % exc.msg.replace("point 'uri' at", "point 'dest_uri' at"), **exc.details)
    try:
        return reconcile(MigrationResource(ctx, conn), check_mode=ctx.check_mode, want_diff=ctx.diff)
    finally:
        dest.close()
