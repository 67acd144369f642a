# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``backup``: the options, and the choice between a full and an incremental point (a pure function)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.virtops.libvirt.plugins.module_utils._domain import model as _domain

from ansible_collections.virtops.libvirt.plugins.module_utils._backup import repo as _repo
from ansible_collections.virtops.libvirt.plugins.module_utils._backup.retention import check_policy
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, InvalidInputError

COMPRESSIONS = ("none", "zstd", "gzip")
#: qcow2 compression_type of each choice (gzip: deflate clusters, what qcow2 calls zlib)
QCOW2_COMPRESSION = dict(zstd="zstd", gzip="zlib")
DAY = 86400


def check_params(params):
    vm = params.get("vm")
    _domain.validate_name(vm)
    if vm.startswith(".") or "/" in vm:
        raise InvalidInputError("vm: %r cannot name a directory of the repository" % vm)
    repository = params.get("repository")
    if not repository or not os.path.isabs(repository):
        raise InvalidInputError("repository must be an absolute path, not %r" % (repository,))
    point = params.get("point")
    if point is not None:
        _repo.validate_point(point)
    mode = params.get("mode") or "auto"
    if mode not in ("full", "incremental", "auto"):
        raise InvalidInputError("mode must be full, incremental or auto, not %r" % mode)
    compression = params.get("compression") or "none"
    if compression not in COMPRESSIONS:
        raise InvalidInputError("compression must be one of %s, not %r" % (", ".join(COMPRESSIONS), compression))
    for key in ("full_every", "full_max_age_days", "timeout"):
        value = params.get(key)
        if value is not None and value < 1:
            raise InvalidInputError("%s must be at least 1, not %r" % (key, value))
    state = params.get("state") or "present"
    if state == "pruned" and point is not None:
        raise InvalidInputError("point goes with state=present (a new point), not with state=pruned")
    retention = check_policy(params.get("retention"))
    if state == "pruned" and retention is None:
        raise InvalidInputError("state=pruned needs retention (keep_last, keep_daily, keep_weekly or keep_monthly)")
    return dict(vm=vm, repository=os.path.normpath(repository), point=point, mode=mode, compression=compression,
                full_every=params.get("full_every"), full_max_age_days=params.get("full_max_age_days"),
                quiesce=bool(params.get("quiesce")), retention=retention, state=state,
                progress_file=params.get("progress_file"), timeout=params.get("timeout"))


def decide_mode(opts, facts, now):
    """``(mode, parent point or None, why)`` of the new point.

    ``facts``: ``active`` (the VM runs), ``qcow2`` (every disk backed up is qcow2), ``uuid``, ``targets``
    (sorted ``[target, virtual size]``), ``checkpoints`` (the VM's checkpoint names), ``points`` (the
    repository's points of the VM, oldest first).  Raises ConflictError when ``mode=incremental`` cannot be."""
    problem = chain_problem(facts)
    points = facts["points"]
    if opts["mode"] == "full":
        return "full", None, "mode=full"
    if problem is None and opts["mode"] == "auto":
        since_full = _since_full(points)
        if opts["full_every"] and len(since_full) >= opts["full_every"]:
            problem = "%d points since the last full point (full_every=%d)" % (len(since_full), opts["full_every"])
        elif opts["full_max_age_days"] and now - (since_full[0]["manifest"].get("created_epoch") or 0) \
                >= opts["full_max_age_days"] * DAY:
            problem = "the last full point is older than %d day(s) (full_max_age_days)" % opts["full_max_age_days"]
    if problem is None:
        return "incremental", points[-1]["name"], "incremental on %s" % points[-1]["name"]
    if opts["mode"] == "incremental":
        raise ConflictError("mode=incremental is not possible for VM '%s': %s (mode=auto makes a full point then)"
                            % (opts["vm"], problem))
    return "full", None, problem


def _since_full(points):
    """The points from the newest full point on (its chain so far)."""
    out = []
    for point in reversed(points):
        out.insert(0, point)
        if point["manifest"].get("mode") == "full":
            break
    return out


def chain_problem(facts):
    """Why the newest point cannot be the parent of an incremental one, or None."""
    if not facts["active"]:
        return "the VM is not running (a stopped VM always gets a full point)"
    if facts.get("old_qcow2"):
        return "disk(s) %s are qcow2 version 2 (compat=0.10), which cannot hold the persistent bitmaps of checkpoints " \
               "(qemu-img amend -o compat=1.1 upgrades a stopped VM's image)" % ", ".join(facts["old_qcow2"])
    if not facts["qcow2"]:
        return "not every disk is qcow2 (checkpoints need qcow2 images)"
    points = facts["points"]
    if not points:
        return "there is no point yet"
    newest = points[-1]
    manifest = newest["manifest"]
    if manifest.get("vm", {}).get("uuid") != facts["uuid"]:
        return "the newest point %s belongs to a VM with another UUID" % newest["name"]
    checkpoint = manifest.get("checkpoint")
    if not checkpoint:
        return "the newest point %s has no checkpoint (it was taken while the VM was stopped)" % newest["name"]
    if checkpoint not in facts["checkpoints"]:
        return "the checkpoint %s of the newest point %s is gone (the VM was migrated, redefined or the checkpoint " \
               "deleted)" % (checkpoint, newest["name"])
    disks = sorted([f.get("target"), f.get("virtual_size")] for f in _repo.disk_files(manifest))
    if disks != facts["targets"]:
        return "the disks changed since the newest point %s" % newest["name"]
    problems = _repo.check_point_files(newest, checksums=False)
    if problems:
        return "the newest point %s is damaged: %s" % (newest["name"], "; ".join(problems))
    try:
        _repo.chain_of(points, newest["name"])
    except InvalidInputError as exc:
        return exc.msg
    return None
