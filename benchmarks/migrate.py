# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""migrate: virtops.libvirt.migrate against raw `virsh migrate`, for the same running guests.

Two lab hypervisors; two booted TCG guests of the lab's Debian image (tests/lab/guest-image.sh), each running a
counter process started through the guest agent:
  S  vbmig-s, its disk (a qcow2 overlay) in a directory both hosts see: memory only is copied
  C  vbmig-c, its disk (the same kind of overlay) in lab1's own default pool: copy_storage all
Each guest makes a round trip lab1 -> lab2 -> lab1, first with virsh, then with the module:
  (a) virsh -c SRC migrate --live --p2p --persistent --undefinesource [--unsafe | --copy-storage-all]
      VM qemu+tcp://DEST/system --migrateuri tcp://DEST   (C: then virsh vol-delete of the source's copy)
  (b) one ansible-playbook run per leg (playbooks/virtops/migrate_leg.yml) with the same URIs
After every leg: the VM runs on the destination only, its counter is the same process (same pid, never exited)
and still counts, and (C) no copy is left on the source. python -m benchmarks migrate (benchmarks/README.md).
"""

import base64
import json
import os
import shutil
import sys
import time

from . import _ansible, _session
from ._report import Report, Runs, table
from ._util import ROOT, BenchError, log, now, render_xml, run, virsh, write

VMS = ("vbmig-s", "vbmig-c")
POOL = "vbmig-shared"
COUNTER = 'i=0; while :; do i=$((i+1)); echo "$$ $i" > /run/vbmig-counter; sleep 1; done'


class Scenario(_session.Scenario):
    name = "migrate"
    title = "virtops.libvirt.migrate against `virsh migrate`, the same running guests"
    files = ("playbooks/virtops/migrate_leg.yml", "templates/migrate_domain.xml")
    hosts = 2

    def read_knobs(self):
        self.reps = self.knobs.int("BENCH_REPS", 1)
        self.memory = self.knobs.int("BENCH_MEMORY_MIB", 384, minimum=128)
        self.boot_wait = self.knobs.int("BENCH_BOOT_WAIT", 900)

    def run(self, session, stack):
        self.session = session
        session.build.require("plugins/modules/migrate.py")
        self.work = session.scratch(self.name)
        lab = session.lab
        self.uri = {1: lab.uri(1), 2: lab.uri(2)}
        self.addr = {1: lab.addr(1), 2: lab.addr(2)}
        self.tcp = {1: lab.tcp_uri(1), 2: lab.tcp_uri(2)}
        self.shared = os.path.join(lab.state_dir, POOL)
        log("guest image (built once per machine, cached)")
        image = run([os.path.join(ROOT, "tests", "lab", "guest-image.sh"), "build"]).strip().splitlines()[-1]
        with open(os.path.join(image, "manifest.json")) as f:
            cmdline = json.load(f)["cmdline"]
        for vm in VMS:
            for i in (1, 2):
                if virsh(self.uri[i], "dominfo", vm, check=False) is not None:
                    raise BenchError("domain %s already exists on lab%d" % (vm, i))
        if os.path.exists(self.shared):
            raise BenchError("%s already exists" % self.shared)
        for i in (1, 2):
            if virsh(self.uri[i], "pool-info", POOL, check=False) is not None:
                raise BenchError("pool %s already exists on lab%d" % (POOL, i))
        # a directory both hosts see (the machine's file system), as a pool on each
        os.mkdir(self.shared, 0o755)
        stack.callback(self.cleanup)
        for i in (1, 2):
            virsh(self.uri[i], "pool-define-as", POOL, "dir", "--target", self.shared)
            virsh(self.uri[i], "pool-start", POOL)
        shutil.copyfile(os.path.join(image, "root.qcow2"), os.path.join(self.shared, "base.qcow2"))
        virsh(self.uri[1], "pool-refresh", POOL)
        virsh(self.uri[1], "vol-create-as", POOL, "vbmig-s.qcow2", "2G", "--format", "qcow2",
              "--backing-vol", "base.qcow2", "--backing-vol-format", "qcow2")
        virsh(self.uri[1], "vol-create-as", "default", "vbmig-c.qcow2", "2G", "--format", "qcow2",
              "--backing-vol", os.path.join(self.shared, "base.qcow2"), "--backing-vol-format", "qcow2")
        virsh(self.uri[2], "pool-refresh", POOL)
        disks = {"vbmig-s": os.path.join(self.shared, "vbmig-s.qcow2"),
                 "vbmig-c": "/var/lib/libvirt/images/vbmig-c.qcow2"}
        for vm in VMS:
            xml = render_xml("migrate_domain.xml", name=vm, memory=self.memory, disk=disks[vm],
                             kernel=os.path.join(image, "vmlinuz"), initrd=os.path.join(image, "initrd.img"),
                             cmdline=cmdline + " cloud-init=disabled quiet")
            virsh(self.uri[1], "define", write(os.path.join(self.work, vm + ".xml"), xml))
            virsh(self.uri[1], "start", vm)
        self.booted_after = self.wait_for_agents()
        self.counter_pid, self.counter_val = {}, {}
        for vm in VMS:
            self.counter_pid[vm] = self.agent(1, vm, "guest-exec", path="/bin/sh", arg=["-c", COUNTER])["pid"]
            self.counter_val[vm] = 0
        time.sleep(3)
        self.legs, self.alloc = {}, {}
        for rep in range(1, self.reps + 1):
            log("repetition %d/%d" % (rep, self.reps))
            for vm in VMS:
                for tool in ("virsh", "module"):
                    self.round_trip(vm, tool, rep)
        return self.report()

    def cleanup(self):
        for i in (1, 2):
            for vm in VMS:
                virsh(self.uri[i], "destroy", vm, check=False)
                virsh(self.uri[i], "undefine", vm, check=False)
            virsh(self.uri[i], "vol-delete", "--pool", "default", "vbmig-c.qcow2", check=False)
            virsh(self.uri[i], "pool-destroy", POOL, check=False)
            virsh(self.uri[i], "pool-undefine", POOL, check=False)
        for f in ("base.qcow2", "vbmig-s.qcow2"):
            if os.path.exists(os.path.join(self.shared, f)):
                os.unlink(os.path.join(self.shared, f))
        try:
            os.rmdir(self.shared)
        except OSError:
            log("warning: %s is not empty, left in place" % self.shared)

    # ------------------------------------------------------------------------------------------ guest agent
    def agent(self, host, vm, command, check=True, **arguments):
        """A guest agent command through virsh: its `return` value (None when it failed and check is false)."""
        msg = dict(execute=command, arguments=arguments) if arguments else dict(execute=command)
        out = virsh(self.uri[host], "qemu-agent-command", vm, json.dumps(msg), check=check)
        return None if out is None else json.loads(out)["return"]

    def wait_for_agents(self):
        log("waiting for the guests' agents (TCG boot; up to %d s)" % self.boot_wait)
        t0 = now()
        for vm in VMS:
            while self.agent(1, vm, "guest-ping", check=False) is None:
                if now() - t0 > self.boot_wait:
                    raise BenchError("%s: the guest agent did not answer within %d s" % (vm, self.boot_wait))
                time.sleep(3)
        return now() - t0

    def read_counter(self, host, vm):
        """(pid, count) from the guest's counter file."""
        pid = self.agent(host, vm, "guest-exec", path="/bin/cat", arg=["/run/vbmig-counter"],
                         **{"capture-output": True})["pid"]
        for _attempt in range(100):
            status = self.agent(host, vm, "guest-exec-status", pid=pid)
            if status["exited"]:
                got = base64.b64decode(status.get("out-data", "")).decode().split()
                return int(got[0]), int(got[1])
            time.sleep(1)
        raise BenchError("cannot read the counter of %s" % vm)

    def verify(self, vm, where, label):
        """On host `where` only, the same counter process, counting; for C no copy left on the source."""
        there = 3 - where
        if (virsh(self.uri[where], "domstate", vm, check=False) or "").strip() != "running":
            raise BenchError("%s: %s is not running on lab%d" % (label, vm, where))
        if virsh(self.uri[there], "dominfo", vm, check=False) is not None:
            raise BenchError("%s: %s is still defined on the source" % (label, vm))
        status = self.agent(where, vm, "guest-exec-status", check=False, pid=self.counter_pid[vm])
        if status is None:
            raise BenchError("%s: the guest agent of %s does not answer on lab%d" % (label, vm, where))
        if status["exited"]:
            raise BenchError("%s: the counter process of %s exited" % (label, vm))
        pid, count = self.read_counter(where, vm)
        if pid != self.counter_pid[vm]:
            raise BenchError("%s: counter pid %d, expected %d" % (label, pid, self.counter_pid[vm]))
        if count <= self.counter_val[vm]:
            raise BenchError("%s: the counter of %s did not advance (%d after %d)"
                             % (label, vm, count, self.counter_val[vm]))
        self.counter_val[vm] = count
        if vm == "vbmig-c":
            virsh(self.uri[there], "pool-refresh", "default")
            if virsh(self.uri[there], "vol-info", "--pool", "default", "vbmig-c.qcow2", check=False) is not None:
                raise BenchError("%s: the source still has a copy of vbmig-c.qcow2" % label)

    def allocation(self, host):
        """Bytes allocated to vbmig-c's disk on host."""
        virsh(self.uri[host], "pool-refresh", "default")
        for line in virsh(self.uri[host], "vol-info", "--bytes", "--pool", "default", "vbmig-c.qcow2").splitlines():
            if line.startswith("Allocation:"):
                return int(line.split()[1])
        raise BenchError("no allocation of vbmig-c.qcow2 on lab%d" % host)

    # ----------------------------------------------------------------------------------------------- legs
    def leg_virsh(self, vm, src, dest):
        """Seconds of one leg with virsh. libvirt calls a disk shared only on a network or cluster file system:
        the shared directory here is a local one both hosts see, so (a) says --unsafe and (b) unsafe: true."""
        extra = ["--copy-storage-all"] if vm == "vbmig-c" else ["--unsafe"]
        t0 = now()
        virsh(self.uri[src], "migrate", "--live", "--p2p", "--persistent", "--undefinesource", *extra, vm,
              self.tcp[dest], "--migrateuri", "tcp://%s" % self.addr[dest])
        if vm == "vbmig-c":
            virsh(self.uri[src], "vol-delete", "--pool", "default", "vbmig-c.qcow2")
        return [now() - t0]

    def leg_module(self, vm, src, dest, label):
        """[whole run, the task alone, the module's own duration] of one leg with the module."""
        copy = "all" if vm == "vbmig-c" else "none"
        result = _ansible.playbook(
            label, self.session.build.venv, "virtops/migrate_leg.yml", self.session.inventory, self.work,
            collections=self.session.build.installed,
            extra_vars=dict(vm=vm, src=self.uri[src], dest=self.uri[dest], peer=self.tcp[dest],
                            data="tcp://%s" % self.addr[dest], copy=copy))
        t0, t1, t2, duration, changed, mode = result.marks(6)
        if changed != "True" or mode != "live":
            raise BenchError("%s: changed=%s mode=%s (log %s)" % (label, changed, mode, result.log))
        return [result.seconds, _ansible.marker_interval(t0, t1, t2), float(duration)]

    def round_trip(self, vm, tool, rep):
        legs = []
        for leg, (src, dest) in enumerate(((1, 2), (2, 1)), 1):
            label = "%s-%s-%d-leg%d" % (vm, tool, rep, leg)
            legs.append(self.leg_virsh(vm, src, dest) if tool == "virsh" else self.leg_module(vm, src, dest, label))
            if vm == "vbmig-c" and leg == 1:
                self.alloc.setdefault(tool, []).append(self.allocation(2))
            self.verify(vm, dest, "%s %s leg %d" % (vm, tool, leg))
        self.legs.setdefault((vm, tool), []).append(legs)
        log("%s %s rep %d: %s" % (vm, tool, rep, " | ".join(" ".join("%.2f" % v for v in leg) for leg in legs)))

    # ----------------------------------------------------------------------------------------------- report
    def report(self):
        report = Report(self.name, self.title)
        report.fact("guests: %d MiB, 1 vCPU, TCG; their agents answered after %.0f s; repetitions: %d (median shown)"
                    % (self.memory, self.booted_after, self.reps))
        rows = []
        for vm, what in (("vbmig-s", "S: shared disk, memory only"), ("vbmig-c", "C: `copy_storage: all`")):
            runs = Runs()
            for i, label in ((0, "whole"), (1, "task"), (2, "duration")):
                for legs in self.legs[(vm, "module")]:
                    runs.add(label + "1", legs[0][i])
                    runs.add(label + "2", legs[1][i])
                    runs.add(label, legs[0][i] + legs[1][i])
            for legs in self.legs[(vm, "virsh")]:
                runs.add("virsh1", legs[0][0])
                runs.add("virsh2", legs[1][0])
                runs.add("virsh", legs[0][0] + legs[1][0])
            floor = "--unsafe" if vm == "vbmig-s" else "--copy-storage-all` + `vol-delete"
            for key, label in (("virsh", "(a) `virsh migrate %s`" % floor),
                               ("whole", "(b) ansible-playbook, whole run"), ("task", "(b) the migrate task alone"),
                               ("duration", "(b) the module's own `duration`")):
                rows.append([what, label, "%.2f" % runs.median(key + "1"), "%.2f" % runs.median(key + "2"),
                             "%.2f" % runs.median(key), "%.2fx" % runs.ratio(key, "virsh"), runs.listed(key, "%.2f")])
        report.section(table(["guest", "variant", "leg lab1→lab2 (s)", "leg lab2→lab1 (s)", "round trip (s)",
                              "ratio to (a)", "all round trips (s)"], rows, right=(2, 3, 4, 5)))
        report.section("- vbmig-c's disk on lab2 after leg 1: %s MiB allocated with (a) (libvirt creates it), %s MiB "
                       "with (b) (the module creates it)" % tuple(
                           " / ".join("%.0f" % (v / 1048576.0) for v in self.alloc[t]) for t in ("virsh", "module")))
        report.data = dict(legs=dict(("%s %s" % k, v) for k, v in self.legs.items()), allocation=self.alloc,
                           booted_after=self.booted_after)
        return report


if __name__ == "__main__":
    sys.exit(_session.main([Scenario.name]))
