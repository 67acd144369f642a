# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""volume_clones: BENCH_N (50) linked clones (qcow2 overlays) of one 2 GiB base volume in a dir pool.

  (a) floor: a loop of `virsh vol-create-as ... --backing-vol base.qcow2`
  (b) virtops.libvirt.volume with backing_volume, one task with a loop of N
  (c) community.libvirt.virt_volume, state=present with a volume XML that carries <backingStore>
  (d) (b) again with the N clones present: every item must be `ok`
  (e) (c) again with the N clones present: every item must be `ok`
  (f) virtops.libvirt.apply: ONE task of N volume items (backing_volume), the module's default `parallel`
  (g) (f) again with the N clones present: every item must be changed=false
  (h) (f) with parallel=BENCH_PARALLEL (8)

After every variant: exactly N clones in the pool, clone1 and cloneN 2 GiB qcow2 overlays of base.qcow2, and N
items of the expected status in the playbook log (apply: in the task's result). Whole runs and the task(s) alone
(markers) are timed. python -m benchmarks volume_clones (benchmarks/README.md).
"""

import re
import sys

from . import _ansible, _session
from ._report import Report, Runs, table
from ._util import BenchError, log, now, qemu_img_info, virsh
from ._virt import DirPool

VARIANTS = (
    ("a", "floor: shell loop of `virsh vol-create-as --backing-vol`"),
    ("b", "virtops.libvirt.volume `backing_volume`, loop (create)"),
    ("c", "community.libvirt.virt_volume %s `xml` with `<backingStore>`, loop (create)"),
    ("d", "(b) again, %d clones present (all ok)"),
    ("e", "(c) again, %d clones present (all ok)"),
    ("f", "virtops.libvirt.apply, %d volume items in one task, `parallel` default (4) (create)"),
    ("g", "(f) again, %d clones present (all changed=false)"),
    ("h", "(f) with `parallel: %d` (create)"),
)


class Scenario(_session.Scenario):
    name = "volume_clones"
    title = "linked clones of a 2 GiB qcow2 base volume, one dir pool"
    files = ("playbooks/virtops/volume_clones.yml", "playbooks/community/volume_clones.yml",
             "playbooks/virtops/apply.yml")

    def read_knobs(self):
        self.n = self.knobs.int("BENCH_N", 50)
        self.reps = self.knobs.int("BENCH_REPS", 1)
        self.parallel = self.knobs.int("BENCH_PARALLEL", 8, maximum=32)
        self.ansible_version = self.knobs.name("BENCH_ANSIBLE_VERSION", "12.3.0")
        self.pool_name = self.knobs.name("BENCH_POOL", "vbench")
        self.pool_dir = self.knobs.path("BENCH_POOL_DIR", "/var/tmp/virtops-bench-pool")

    def run(self, session, stack):
        self.session = session
        session.build.require("plugins/modules/volume.py", "plugins/modules/apply.py")
        self.community = session.community(self.ansible_version)
        self.community.require("plugins/modules/virt_volume.py")
        self.uri = session.lab.uri(1)
        self.logs = session.scratch(self.name)
        self.pool = DirPool(self.uri, self.pool_name, self.pool_dir, ("base.qcow2", "clone*")).create(stack)
        virsh(self.uri, "vol-create-as", self.pool_name, "base.qcow2", "2G", "--format", "qcow2")
        self.runs = Runs()
        build, community = session.build, self.community
        for rep in range(1, self.reps + 1):
            log("repetition %d/%d" % (rep, self.reps))
            self.reset()
            log("(a) virsh vol-create-as loop")
            self.floor()
            self.reset()
            log("(b) virtops.libvirt.volume")
            self.playbook("b", rep, build.venv, "virtops/volume_clones.yml", "changed", build.installed)
            log("(d) virtops.libvirt.volume, second run")
            self.playbook("d", rep, build.venv, "virtops/volume_clones.yml", "ok", build.installed)
            self.reset()
            log("(c) community.libvirt.virt_volume")
            self.playbook("c", rep, community.venv, "community/volume_clones.yml", "changed")
            log("(e) community.libvirt.virt_volume, second run")
            self.playbook("e", rep, community.venv, "community/volume_clones.yml", "ok")
            self.reset()
            log("(f) virtops.libvirt.apply, %d items in one task" % self.n)
            self.apply("f", rep, True)
            log("(g) virtops.libvirt.apply again, clones present")
            self.apply("g", rep, False)
            self.reset()
            log("(h) virtops.libvirt.apply, parallel=%d" % self.parallel)
            self.apply("h", rep, True, self.parallel)
        self.reset()
        return self.report()

    def clones(self):
        return [v for v in self.pool.volumes() if re.match(r"^clone[0-9]+$", v)]

    def reset(self):
        self.pool.delete_files("clone*")
        if self.clones():
            raise BenchError("clones left after reset")

    def verify(self, variant):
        count = len(self.clones())
        if count != self.n:
            raise BenchError("(%s): %d clones in pool %r, expected %d" % (variant, count, self.pool_name, self.n))
        for i in sorted({1, self.n}):
            info = qemu_img_info(self.pool.file("clone%d" % i))
            got = (info.get("format"), info.get("virtual-size"), info.get("backing-filename"))
            if got != ("qcow2", 2 << 30, self.pool.file("base.qcow2")):
                raise BenchError("(%s): clone%d is not a 2 GiB qcow2 overlay of base.qcow2: %s" % (variant, i, got))

    def floor(self):
        t0 = now()
        for i in range(1, self.n + 1):
            virsh(self.uri, "vol-create-as", self.pool_name, "clone%d" % i, "2G", "--format", "qcow2",
                  "--backing-vol", "base.qcow2", "--backing-vol-format", "qcow2")
        seconds = now() - t0
        self.verify("a")
        self.runs.add("a", seconds)

    def playbook(self, variant, rep, venv, name, status, collections=None):
        result = _ansible.playbook(
            "%s-%d" % (variant, rep), venv, name, self.session.inventory, self.logs, collections=collections,
            extra_vars=dict(bench_pool=self.pool_name, bench_pool_dir=self.pool_dir, bench_n=self.n))
        result.check_items("Clone", status, self.n)
        self.verify(variant)
        self.runs.add(variant, result.seconds)
        self.runs.add(variant + "-task", _ansible.marker_interval(*result.marks(3)))

    def apply(self, variant, rep, changed, parallel=None):
        """One virtops.libvirt.apply task of N volume items (the loop of (b) written out as a list)."""
        label = "%s-%d" % (variant, rep)
        resources = [dict(kind="volume", pool=self.pool_name, name="clone%d" % i, backing_volume="base.qcow2",
                          capacity="2G", format="qcow2") for i in range(1, self.n + 1)]
        extra = dict(bench_resources=resources)
        if parallel:
            extra["bench_parallel"] = parallel
        result = _ansible.playbook(label, self.session.build.venv, "virtops/apply.yml", self.session.inventory,
                                   self.logs, collections=self.session.build.installed, extra_vars=extra)
        _ansible.check_apply(result, [
            "resources[%d] (volume 'clone%d' in pool %r)" % (i - 1, i, self.pool_name) for i in range(1, self.n + 1)],
            changed)
        self.verify(variant)
        self.runs.add(variant, result.seconds)
        self.runs.add(variant + "-task", _ansible.marker_interval(*result.marks(3)))

    def report(self):
        report = Report(self.name, "%d %s" % (self.n, self.title))
        report.fact("pool dir %s; repetitions: %d (median shown); ratios of whole runs to the medians of (a) and "
                    "(c) of the same run; `task` is the Clone or Apply task alone (markers in the playbook)"
                    % (self.pool_dir, self.reps))
        rows = []
        r = self.runs
        for key, what in VARIANTS:
            what = (what % self.community.cl_version if key == "c" else what % self.parallel if key == "h"
                    else what % self.n if "%d" in what else what)
            m = r.median(key)
            task = "-" if key == "a" else "%.2f" % r.median(key + "-task")
            to_c = "-" if key == "a" else "%.2fx" % r.ratio(key, "c")
            rows.append(["(%s)" % key, what, "%.2f" % m, task, "%.0f" % (1000 * m / self.n),
                         "%.2fx" % r.ratio(key, "a"), to_c, r.listed(key)])
        report.section(table(["variant", "what", "seconds", "task s", "ms per clone", "ratio to (a)", "ratio to (c)",
                              "all runs (s)"], rows, right=(2, 3, 4, 5, 6)))
        report.section("Rerun against the first run of the same task: (g)/(f) whole run %.2fx, task alone %.2fx; "
                       "(d)/(b) %.2fx and %.2fx; (e)/(c) %.2fx and %.2fx." % (
                           r.ratio("g", "f"), r.ratio("g-task", "f-task"), r.ratio("d", "b"),
                           r.ratio("d-task", "b-task"), r.ratio("e", "c"), r.ratio("e-task", "c-task")))
        report.data = dict(n=self.n, runs=self.runs.values)
        return report


if __name__ == "__main__":
    sys.exit(_session.main([Scenario.name]))
