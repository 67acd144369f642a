# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``volume`` resource: one storage volume in a pool, made (see :mod:`.volume_fill`), grown or
shrunk, made again when its fill did not complete, or deleted.

Every volume the module makes carries a record (:mod:`.record`) of its format and, when filled, of
what went into it and whether the fill completed: an incomplete fill (the daemon went away during the
upload) or a fill from another source or checksum is made again on the next run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._storage import record as _record
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.disks import disk_users, users_of
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_fill import FILL_WAIT_SECONDS, CreateSteps, SourceSteps
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_encryption import secret_uuid
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_source import parse_checksum
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_view import (
    lookup_pool,
    lookup_volume,
    model_and_record,
    pool_target_path,
    record_view,
    validate_name,
    volume_facts,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._storage.volume_write import normal_capacity

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt_errors, uri_is_local
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import refresh_pool, retry_busy
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Resource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import parse_size
from ansible_collections.virtops.libvirt.plugins.module_utils._core.timeouts import timeout_seconds
from ansible_collections.virtops.libvirt.plugins.module_utils._core.usage import guard, in_use_error, usage
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.qemu_img import QemuImg


PREALLOCATION = ("off", "metadata", "full")


class VolumeResource(SourceSteps, CreateSteps, Resource):
    kind = "volume"

    def __init__(self, ctx):
        super(VolumeResource, self).__init__(ctx)
        p = self.params
        validate_name(p["name"])
        if not p.get("pool"):
            raise InvalidInputError("pool must not be empty")
        for key in ("backing_volume", "clone_from"):
            if p.get(key) is not None:
                validate_name(p[key], key)
        if p.get("backing_volume") is not None and p["backing_volume"] == p["name"]:
            raise InvalidInputError("a volume cannot be its own backing_volume")
        if p.get("clone_from") is not None and p["clone_from"] == p["name"]:
            raise InvalidInputError("a volume cannot be cloned from itself")
        self.capacity = parse_size(p["capacity"], "capacity", allow_zero=False) if p.get("capacity") is not None else None
        if p.get("checksum") is not None:
            parse_checksum(p["checksum"])
        if p.get("source") is not None and not p["source"].strip():
            raise InvalidInputError("source must not be empty")
        timeout_seconds(p.get("timeout"), "timeout")
        if p.get("backing_volume") is not None and p.get("format") == "raw":
            raise InvalidInputError("a linked clone (backing_volume) is always qcow2, not raw")
        if p.get("preallocation") == "metadata" and p.get("format") == "raw":
            raise InvalidInputError("preallocation=metadata needs format qcow2")
        if p.get("state") == "present" and not any(p.get(k) for k in ("capacity", "source", "backing_volume", "clone_from")):
            self._need_capacity = True
        else:
            self._need_capacity = False
        self._pool = None
        self._pool_missing = False
        self._vol = None
        self._users = None
        self._record = None
        self._work = {}

    # --- lookups -----------------------------------------------------------------------------

    @property
    def pool(self):
        """The active pool; None when it does not exist (then the volume is absent: in check mode
        an earlier task may create the pool, which is assumed when the volume should be present)."""
        if self._pool is None and not self._pool_missing:
            try:
                self._pool = lookup_pool(self.ctx.conn, self.params["pool"])
            except NotFoundError as exc:
                self._pool_missing = True
                if self.params.get("state") != "absent":
                    self.ctx.assume(exc)
            except ConflictError as exc:  # not active: an earlier task may start it
                if self.params.get("state") == "absent":
                    raise
                self._pool_missing = True
                self.ctx.assume(exc)
        return self._pool

    def _qemu_img(self):
        return QemuImg(run=self.ctx.run_command)

    def _domain_users(self, path):
        if self._users is None:
            self._users = disk_users(self.ctx.conn)
        return users_of(self._users, self.params["pool"], self.name, path)

    # --- Resource API ------------------------------------------------------------------------

    def read(self):
        if self.pool is None:
            return None
        self._vol = lookup_volume(self.pool, self.name)
        if self._vol is None:
            return None
        try:
            model, rec = model_and_record(self._vol, self.ctx.uri)
        except NotFoundError:
            # libvirt still listed a file that was removed behind its back (another host on a shared
            # directory, an rm): after a refresh the pool shows what is really there.
            refresh_pool(self.pool)
            self._vol = lookup_volume(self.pool, self.name, refresh=False)
            if self._vol is None:
                return None
            model, rec = model_and_record(self._vol, self.ctx.uri)
        if rec is not None and not rec.get("complete") and _record.filler_state(rec) == "alive":
            return self._wait_for_filler()
        self._record = rec
        return volume_facts(self.ctx.conn, self.params["pool"], self._vol, uri=self.ctx.uri, model=model, rec=rec)

    def _wait_for_filler(self, sleep=time.sleep, clock=time.monotonic):
        """Another task is filling this volume right now: wait until it is done (or gave up) and read again."""
        deadline = clock() + FILL_WAIT_SECONDS
        while True:
            vol = lookup_volume(self.pool, self.name)
            rec = model_and_record(vol, self.ctx.uri)[1] if vol is not None else None
            if rec is None or rec.get("complete") or _record.filler_state(rec) != "alive":
                return self.read()
            if clock() >= deadline:
                raise ConflictError("volume %r is still being filled by another task (pid %s) after %d s"
                                    % (self.name, (rec.get("filler") or {}).get("pid"), FILL_WAIT_SECONDS))
            sleep(1.0)

    def desired(self, current):
        if self.params["state"] == "absent":
            return None
        return dict(
            format=self.params.get("format"),
            capacity=self.capacity,
            backing_volume=self.params.get("backing_volume"),
        )

    def compare(self, current, desired):
        if current is not None and desired is not None:
            desired = dict(desired, capacity=normal_capacity(desired["capacity"], current["format"]))
        return super(VolumeResource, self).compare(current, desired)

    def predict(self, current, desired):
        if desired is None:
            return None
        if current is not None:
            out = dict(current)
            if desired["capacity"] is not None:
                out["capacity"] = normal_capacity(desired["capacity"], current["format"])
            return out
        fmt = self._new_format()
        target = pool_target_path(self.pool) if self.pool is not None else None
        rec = None
        if target and uri_is_local(self.ctx.uri) and os.path.isdir(target):
            rec = record_view(dict(self._new_record(fmt), complete=True))
        return dict(
            name=self.name, pool=self.params["pool"], path=os.path.join(target, self.name) if target else None,
            type="file", format=fmt, reported_format=fmt, record=rec, capacity=normal_capacity(desired["capacity"], fmt),
            allocation=None, backing_volume=desired["backing_volume"], backing_chain=None,
            encryption=dict(self.params["encryption"]) if self.params.get("encryption") else None,
        )

    def diff_views(self, current, desired):
        """A new volume shows what it will be (name, pool, path, format, capacity, backing volume),
        not only the options given (a volume made from ``source`` alone showed ``after: {}``)."""
        before, after = super(VolumeResource, self).diff_views(current, desired)
        if current is None and desired is not None:
            predicted = self.predict(current, desired)
            after = dict((k, v) for k, v in predicted.items()
                         if v is not None and k not in ("allocation", "backing_chain", "reported_format", "record"))
            if self.params.get("clone_from"):
                after["clone_from"] = self.params["clone_from"]
            after["state"] = "present"
        return before, after

    def result(self, state, outcome):
        return dict(volume=state)

    def plan(self, current, desired, diff, plan):
        if desired is None:
            if current is not None:
                self._plan_delete(current, plan)
            return
        if current is None:
            self._plan_create(plan)
            return
        reason = self._refill_reason(current, plan)
        if reason:
            self._plan_refill(current, reason, plan)
            return
        self._plan_update(current, diff, plan)

    # --- delete ------------------------------------------------------------------------------

    def _plan_delete(self, current, plan):
        pool = self.params["pool"]
        users, deps = usage(self.ctx).users_of([current["path"]], [(pool, self.name)],
                                               exclude_volumes=["%s/%s" % (pool, self.name)])
        error = in_use_error("volume %r of pool %r" % (self.name, pool), users, deps,
                             advice="remove those VMs (or their disks) and volumes first", action="delete it")
        guard(self.ctx, error, self.params.get("force"), plan.warn)
        vol = self._vol
        if self.params.get("wipe"):
            plan.add("wipe volume %r" % self.name, lambda: self._call(vol.wipe, 0, what="wiping volume %r" % self.name))
        plan.add("delete volume %r from pool %r" % (self.name, self.params["pool"]),
                 lambda: self._call(vol.delete, 0, what="deleting volume %r" % self.name))

    @staticmethod
    def _call(func, *args, **kwargs):
        what = kwargs.pop("what")
        return retry_busy(lambda: func(*args), what)

    # --- update ------------------------------------------------------------------------------

    def _plan_update(self, current, diff, plan):
        want_fmt = self.params.get("format")
        if want_fmt is not None and want_fmt != current["format"]:
            raise ConflictError(
                "volume %r exists with format %s, not %s: the format of an existing volume is not converted; "
                "delete it first or use another name" % (self.name, current["format"], want_fmt),
                current_format=current["format"],
            )
        want_backing = self.params.get("backing_volume")
        if want_backing is not None and want_backing != current["backing_volume"]:
            raise ConflictError(
                "volume %r exists with backing volume %r, not %r: the backing file of an existing volume is not changed"
                % (self.name, current["backing_volume"], want_backing),
            )
        self._check_encryption(current)
        if not diff.touches("capacity"):
            return
        size = normal_capacity(self.capacity, current["format"])
        users = self._domain_users(current["path"])
        running = [u for u in users if u["active"]]
        if size < current["capacity"]:
            if not self.params.get("allow_shrink"):
                raise InvalidInputError(
                    "volume %r is %d bytes; shrinking it to %d bytes loses data: set allow_shrink=true to do it anyway"
                    % (self.name, current["capacity"], size),
                )
            if running:
                raise ConflictError("volume %r is in use by running domain %r: it cannot be shrunk online"
                                    % (self.name, running[0]["domain"]))
            plan.add("shrink volume %r from %d to %d bytes" % (self.name, current["capacity"], size),
                     lambda: self._resize(size, shrink=True))
        elif running:
            user = running[0]
            plan.add("grow volume %r online (domain %r, disk %s) from %d to %d bytes"
                     % (self.name, user["domain"], user["target"], current["capacity"], size),
                     lambda: self._block_resize(user, size))
        else:
            plan.add("grow volume %r from %d to %d bytes" % (self.name, current["capacity"], size),
                     lambda: self._resize(size))

    def _check_encryption(self, current):
        """An existing volume is not encrypted (or decrypted, or given another secret) by this module."""
        want = self.params.get("encryption")
        if want is None:
            return
        have = current.get("encryption")
        if have is None:
            raise ConflictError("volume %r exists without encryption: an existing volume is not encrypted; delete it "
                                "first or use another name" % self.name)
        wanted = secret_uuid(self.ctx, want["secret"], "encryption.secret")
        # after a pool refresh libvirt reports <encryption format='luks'> without its secret: nothing to compare
        if wanted is not None and have.get("secret") is not None and have["secret"] not in (wanted, want["secret"]):
            raise ConflictError("volume %r is encrypted with secret %s, not %s: the key of an existing volume is not "
                                "changed here" % (self.name, have.get("secret"), want["secret"]))

    def _resize(self, size, shrink=False, vol=None):
        vol = vol or self._vol
        flags = flag("VIR_STORAGE_VOL_RESIZE_SHRINK", 4) if shrink else 0
        self._call(vol.resize, size, flags, what="resizing volume %r" % self.name)

    def _block_resize(self, user, size):
        with libvirt_errors("growing disk %s of domain %r" % (user["target"], user["domain"])):
            dom = self.ctx.conn.lookupByName(user["domain"])
            dom.blockResize(user["target"], size, flag("VIR_DOMAIN_BLOCK_RESIZE_BYTES", 1))
        refresh_pool(self.pool)

    def refresh(self):
        self._users = None
        return self.read()
