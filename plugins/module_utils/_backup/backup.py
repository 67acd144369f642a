# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``backup``: a point in time of one VM in a repository (see ``repo`` for the layout), and retention.

A running VM is read by libvirt's backup job (``job``): full, or incremental on the checkpoint of the
newest point.  A stopped VM is read by ``qemu-img convert`` (only allocated data), always as a full
point: its disks have no bitmap that says what changed since the last point.

Idempotency: a point is named by ``point`` (a second run with the same name finds it and changes
nothing) or by the time (every run makes one).  Retention removes the points its policy does not keep,
never one that a kept point needs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import time

from ansible_collections.virtops.libvirt.plugins.module_utils._backup import job as _job
from ansible_collections.virtops.libvirt.plugins.module_utils._backup import repo as _repo
from ansible_collections.virtops.libvirt.plugins.module_utils._backup.params import check_params, decide_mode
from ansible_collections.virtops.libvirt.plugins.module_utils._backup.retention import plan_retention
from ansible_collections.virtops.libvirt.plugins.module_utils._backup.run import BackupRun, consistency
from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.diff import ABSENT, DifferenceTracker
from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import ConflictError, NotFoundError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.lookups import find_vm
from ansible_collections.virtops.libvirt.plugins.module_utils._core.reconcile import Outcome, Resource
from ansible_collections.virtops.libvirt.plugins.module_utils._core.sizes import human_size
from ansible_collections.virtops.libvirt.plugins.module_utils._export.params import pid_alive
from ansible_collections.virtops.libvirt.plugins.module_utils._export.source import read_vm
from ansible_collections.virtops.libvirt.plugins.module_utils._export.writers import free_bytes
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.progress import Progress
from ansible_collections.virtops.libvirt.plugins.module_utils._tools.qemu_img import QemuImg


_TMP_RE = re.compile(r"^\.(.+)" + re.escape(_repo.TMP_MARK) + r"(\d+)$")


def stale_temporaries(repository, vm):
    """Temporary point directories of runs whose process is gone."""
    base = _repo.vm_dir(repository, vm)
    found = []
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return found
    for name in names:
        match = _TMP_RE.match(name)
        if match and not pid_alive(int(match.group(2))):
            found.append(os.path.join(base, name))
    return found


def read_source(conn, name, qemu):
    """The VM as a backup sees it: ``read_vm`` plus the disks left out, NVRAM, checkpoints, qcow2-ness."""
    source = read_vm(conn, name, qemu)
    if source["leftovers"]:
        raise ConflictError("VM '%s' still runs on the temporary overlay(s) %s of an interrupted export: run the "
                            "export again (it merges them back) before backing the VM up"
                            % (name, ", ".join(e["overlay"] for e in source["leftovers"])))
    dom = source["dom"]
    root = _xml.parse(dom.XMLDesc(0), "domain XML")
    every = [_xml.find_attr(n, "target", "dev") for n in root.findall("devices/disk")]
    chosen = [d for d in source["disks"] if not d["readonly"] and not d["shareable"]]
    source["disks"] = chosen
    source["others"] = [t for t in every if t and t not in set(d["target"] for d in chosen)]
    source["old_qcow2"] = [d["target"] for d in chosen if d["format"] == "qcow2" and d.get("compat") != "1.1"]
    source["qcow2"] = bool(chosen) and all(d["format"] == "qcow2" for d in chosen) and not source["old_qcow2"]
    def_root = _xml.parse(source["definition"], "domain XML")
    source["nvram"] = (_xml.find_text(def_root, "os/nvram") or "").strip() or None
    source["checkpoints"] = _job.checkpoint_names(dom)
    return source


class BackupResource(Resource):
    kind = "backup"

    def __init__(self, ctx):
        super(BackupResource, self).__init__(ctx)
        self.opts = check_params(ctx.params)
        self.progress = Progress(self.opts["progress_file"])
        self._qemu = None
        self.source = None
        self.points = []
        self.broken = []
        self.point = None
        self.started = time.time()

    @property
    def name(self):
        return self.opts["vm"]

    @property
    def qemu(self):
        if self._qemu is None:
            self._qemu = QemuImg.of(self.ctx)
        return self._qemu

    def read(self):
        opts = self.opts
        self.points, self.broken = _repo.load_points(opts["repository"], opts["vm"])
        names = [p["name"] for p in self.points]
        if opts["state"] == "present":
            self.point = opts["point"] or _repo.point_name_now(lambda: self.started)
            if self.point not in names:
                if find_vm(self.ctx.conn, opts["vm"]) is None:
                    self.ctx.assume(NotFoundError("VM '%s' does not exist" % opts["vm"]))
                else:
                    self.source = read_source(self.ctx.conn, opts["vm"], self.qemu)
                    if not self.source["disks"]:
                        raise ConflictError("VM '%s' has no disk to back up" % opts["vm"])
                if os.path.lexists(_repo.point_dir(opts["repository"], opts["vm"], self.point)):
                    raise ConflictError("%s exists but is not a point (no manifest of this module): remove it or choose "
                                        "another point name" % _repo.point_dir(opts["repository"], opts["vm"], self.point))
        return dict(points=names)

    def desired(self, current):
        points = list(current["points"])
        if self.point is not None and self.point not in points:
            points.append(self.point)
        return dict(points=points)

    def compare(self, current, desired):
        tracker = DifferenceTracker()
        if self.point is not None and self.point not in current["points"]:
            tracker.add(("point",), ABSENT, self.point)
        return tracker

    def _facts(self):
        src = self.source
        return dict(active=src["active"], qcow2=src["qcow2"], old_qcow2=src["old_qcow2"], uuid=src["uuid"], checkpoints=src["checkpoints"],
                    targets=sorted([d["target"], d["virtual_size"]] for d in src["disks"]), points=self.points)

    def plan(self, current, desired, diff, plan):
        opts = self.opts
        outcome = Outcome(run=None, mode=None, parent=None, why=None, retention=None)
        new_point = None
        if diff:
            if self.source is None:  # assumed (check mode)
                plan.add("back up VM '%s' into %s as point %s" % (opts["vm"], opts["repository"], self.point))
            else:
                new_point = self._plan_point(plan, outcome)
        if opts["retention"]:
            self._plan_retention(plan, outcome, new_point)
        return outcome

    def _plan_point(self, plan, outcome):
        opts, src = self.opts, self.source
        mode, parent, why = decide_mode(opts, self._facts(), self.started)
        outcome.values.update(mode=mode, parent=parent, why=why)
        run = outcome.values["run"] = BackupRun(self.ctx, self.qemu, opts, src, self.point, mode, parent, self.progress)
        if parent is not None:
            run.parent_checkpoint = [p for p in self.points if p["name"] == parent][0]["manifest"]["checkpoint"]
        estimate = sum(d["data"] for d in src["disks"])
        free = free_bytes(opts["repository"] if os.path.isdir(opts["repository"]) else os.path.dirname(opts["repository"]))
        if free is not None and free < estimate:
            plan.warn("%s has %s free; a full point may need up to %s"
                      % (opts["repository"], human_size(free), human_size(estimate)))
        if opts["quiesce"] and not src["active"]:
            plan.warn("quiesce applies to running VMs only: VM '%s' is stopped" % opts["vm"])
        targets = ", ".join(d["target"] for d in src["disks"])
        plan.add("start point %s of VM '%s' in %s" % (self.point, opts["vm"], opts["repository"]),
                 run.guard(run.start), run.cleanup)
        stale = stale_temporaries(opts["repository"], opts["vm"])
        if stale:
            plan.add("remove %d leftover temporary point(s) of interrupted runs: %s"
                     % (len(stale), ", ".join(os.path.basename(p) for p in stale)),
                     run.guard(lambda: [_repo.remove_tree(p) for p in stale]))
        if src["active"]:
            plan.add("create the target file(s) of %s%s" % (targets, " on point %s" % parent if parent else ""),
                     run.guard(run.create_targets))
            plan.add("%s backup job of running VM '%s' (%s)%s%s" % (
                mode, opts["vm"], targets, ", checkpoint %s" % run.checkpoint if run.checkpoint else "",
                ", file systems quiesced by the guest agent" if opts["quiesce"] else ""),
                run.guard(run.job), run.undo_job, partial=True)
            if opts["compression"] != "none":
                plan.add("compress the backup of %s (%s)" % (targets, opts["compression"]), run.guard(run.compress))
        else:
            plan.add("copy %s of stopped VM '%s' (%s of data)%s" % (
                targets, opts["vm"], human_size(sum(d["data"] for d in src["disks"])),
                ", compressed (%s)" % opts["compression"] if opts["compression"] != "none" else ""),
                run.guard(run.convert))
        plan.add("save the definition%s" % (" and NVRAM" if src.get("nvram") else ""), run.guard(run.write_definition))
        plan.add("checksums, manifest and move point %s into place" % self.point, run.guard(run.finish))
        if run.checkpoint:
            older = [n for n in src["checkpoints"] if _job.of_repository(n, opts["repository"])]
            if older:
                plan.add("delete the checkpoint(s) of older points: %s" % ", ".join(older), run.drop_old_checkpoints)
        return dict(name=self.point, time=self.started, parent=parent)

    def _plan_retention(self, plan, outcome, new_point):
        points = [dict(name=p["name"], time=p["manifest"].get("created_epoch") or 0, parent=p["manifest"].get("parent")
                       if p["manifest"].get("mode") == "incremental" else None) for p in self.points]
        if new_point is not None:
            points.append(new_point)
        decision = plan_retention(points, self.opts["retention"])
        outcome.values["retention"] = decision
        base = _repo.vm_dir(self.opts["repository"], self.opts["vm"])
        for name in decision["remove"]:
            plan.add("remove point %s (retention)" % name,
                     lambda name=name: _repo.remove_point(os.path.join(base, name)))

    def refresh(self):
        points, _broken = _repo.load_points(self.opts["repository"], self.opts["vm"])
        return dict(points=[p["name"] for p in points])

    def predict(self, current, desired):
        return desired  # retention's removals are in the result's ``removed``

    def result(self, state, outcome):
        values = outcome.values
        run = values.get("run")
        decision = values.get("retention")
        by_name = dict((p["name"], p) for p in self.points)
        point = None
        if self.point is not None:
            manifest = run.manifest if run is not None and run.manifest is not None else \
                (by_name[self.point]["manifest"] if self.point in by_name else None)
            point = dict(name=self.point, directory=_repo.point_dir(self.opts["repository"], self.opts["vm"], self.point),
                         created=None, mode=values.get("mode"), parent=values.get("parent"), checkpoint=None,
                         size=None, files=[], consistency=None, reason=values.get("why"))
            if manifest is not None:
                point.update(created=manifest.get("created"), mode=manifest.get("mode"), parent=manifest.get("parent"),
                             checkpoint=manifest.get("checkpoint"), consistency=manifest.get("consistency"),
                             files=[dict((k, f.get(k)) for k in ("name", "kind", "target", "size", "sha256"))
                                    for f in manifest.get("files") or []],
                             size=sum(int(f.get("size") or 0) for f in manifest.get("files") or []))
            elif self.source is not None:
                point.update(consistency=consistency(self.opts, self.source),
                             checkpoint=run.checkpoint if run is not None else None)
        out = dict(point=point, repository=self.opts["repository"], points=(state or {}).get("points") or [],
                   removed=list(decision["remove"]) if decision else [],
                   kept=[dict(name=n, why=decision["reasons"][n]) for n in decision["keep"]] if decision else [],
                   progress_file=self.opts["progress_file"], duration=round(time.time() - self.started, 2))
        if run is not None and run.removed_checkpoints:
            out["removed_checkpoints"] = list(run.removed_checkpoints)
        if self.broken:
            self.ctx.warn("directories without a manifest in %s (not points): %s" % (
                _repo.vm_dir(self.opts["repository"], self.opts["vm"]), ", ".join(self.broken)))
        for text in run.warnings if run is not None else ():
            self.ctx.warn(text)
        return out

    def diff_views(self, current, desired):
        return dict(points=current["points"]), dict(points=desired["points"])
