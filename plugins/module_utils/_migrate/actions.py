# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The side effects of one migration run, as plan actions with their undo: destination volumes
created for a storage copy (and removed again if the migration fails), the offline copy through
volume streams, the maximum downtime set and restored, the migration itself, and the clean-up of
the source.  A :class:`MigrationRun` keeps what the run measures (``duration``, ``job``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, VirtopsError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import refresh_pool, retry_busy
from ansible_collections.virtops.libvirt.plugins.module_utils._migrate.decide import find_domain
from ansible_collections.virtops.libvirt.plugins.module_utils._migrate.job import (
    copy_volume_data,
    destination_volume_xml,
    live_flags,
    live_params,
    merge_job_stats,
    offline_flags,
    run_job,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._migrate.prechecks import libvirt_message


class MigrationRun:
    """The actions of one run moving VM ``opts["name"]`` (``src_dom`` on ``src``) to ``dst``.

    ``duration`` covers storage copies and the migration (from the first side effect); ``job`` holds
    the statistics of the finished migration job.
    """

    def __init__(self, ctx, src, dst, src_dom, opts, mode):
        self.ctx = ctx
        self.src = src
        self.dst = dst
        self.src_dom = src_dom
        self.opts = opts
        self.mode = mode
        self.name = opts["name"]
        self.duration = 0.0
        self.job = {}
        self.created = []
        self._old_downtime = None
        self._began = None

    def where(self):
        return "from %s to %s" % (self.opts["uri"], self.opts["dest_uri"])

    def create_volume(self, disk, offline=False):
        """A plan action creating the destination volume of ``disk`` (see :func:`destination_volume_xml`)."""
        text = _xml.to_string(destination_volume_xml(disk, offline), pretty=False)

        def create():
            self._start_clock()
            vol = retry_busy(lambda: disk.pool.createXML(text, 0),
                             "creating %s on the destination (pool %s)" % (disk.path, disk.pool_name))
            self.created.append((disk, vol))
            return vol

        return create

    def delete_created(self, disk):
        def delete():
            for index, (made, vol) in enumerate(self.created):
                if made is disk:
                    break
            else:
                return
            if find_domain(self.dst, self.name, "destination") is not None:
                raise ConflictError("%s was left on the destination: VM '%s' is there and may use it"
                                    % (disk.path, self.name))
            retry_busy(lambda: vol.delete(0), "deleting %s from the destination" % disk.path)
            del self.created[index]

        return delete

    def copy_offline(self, disk):
        create = self.create_volume(disk, offline=True)
        delete = self.delete_created(disk)

        def copy():
            vol = create()
            try:
                copy_volume_data(self.src, disk.source_vol, self.dst, vol, disk.format or "raw")
                refresh_pool(disk.pool)
            except Exception:
                try:  # this step's own half-made volume: the plan's rollback undoes only finished steps
                    delete()
                except Exception as exc:
                    self.ctx.warn("the half-copied %s stays on the destination: %s" % (disk.path, exc))
                raise

        return copy

    def _start_clock(self):
        """Called by the first side effect: ``duration`` covers storage copies and the migration."""
        if self._began is None:
            self._began = time.monotonic()

    def _stop_clock(self):
        self.duration = time.monotonic() - self._began

    def set_downtime(self):
        self._start_clock()
        with libvirt_errors("setting the maximum downtime of VM '%s'" % self.name):
            try:
                self._old_downtime = self.src_dom.migrateGetMaxDowntime(0)
            except (libvirt.libvirtError, AttributeError):
                self._old_downtime = None
            self.src_dom.migrateSetMaxDowntime(int(self.opts["max_downtime"]), 0)

    def restore_downtime(self):
        if self._old_downtime:
            with libvirt_errors("restoring the maximum downtime of VM '%s'" % self.name):
                self.src_dom.migrateSetMaxDowntime(int(self._old_downtime), 0)

    def migrate_live(self, source, copy_targets):
        def migrate():
            flags = live_flags(self.opts, self.mode, source["persistent"], bool(copy_targets))
            params = live_params(self.opts, copy_targets)
            dom = self.src_dom
            what = "migrating VM '%s' %s, peer to peer via %s" % (self.name, self.where(), self.opts["peer_uri"])
            self._start_clock()
            try:
                _seconds, last = run_job(dom, lambda: dom.migrateToURI3(self.opts["peer_uri"], params, flags),
                                         what, timeout=self.opts["timeout"])
            except VirtopsError as exc:
                if exc.details.get("libvirt_error_code") == flag("VIR_ERR_MIGRATE_UNSAFE", -1):
                    raise ConflictError(
                        "%s: libvirt refuses: %s. It calls a disk shared only on a network or cluster file "
                        "system; if both hosts really use the same file, set unsafe: true, otherwise use "
                        "copy_storage: all" % (what, exc.msg.split(": ")[-1]), **exc.details)
                raise
            self._stop_clock()
            completed = {}
            moved = find_domain(self.dst, self.name, "destination")
            if moved is not None:
                try:
                    completed = moved.jobStats(flag("VIR_DOMAIN_JOB_STATS_COMPLETED"))
                except libvirt.libvirtError:
                    pass
            self.job = merge_job_stats(last, completed)

        return migrate

    def migrate_offline(self):
        self._start_clock()
        with libvirt_errors("moving the definition of VM '%s' %s" % (self.name, self.where())):
            self.src_dom.migrate3(self.dst, {}, offline_flags(self.opts))
        self._stop_clock()

    def undefine_stale(self):
        flags = flag("VIR_DOMAIN_UNDEFINE_KEEP_NVRAM")
        with libvirt_errors("undefining the stale definition of VM '%s' on the source" % self.name):
            try:
                self.src_dom.undefineFlags(flags)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise
                self.src_dom.undefine()

    def remove_source(self, disk):
        def remove():
            vol = disk.source_vol
            try:
                if vol is None:
                    vol = self.src.storageVolLookupByPath(disk.path)
                vol.delete(0)
            except libvirt.libvirtError as exc:
                self.ctx.warn("the copied disk %s stays on the source: deleting it failed: %s"
                              % (disk.path, libvirt_message(exc)))

        return remove
