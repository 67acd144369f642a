# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_overhead: the per-task cost of virtops.libvirt.vm, 20 VMs from linked clones, and where one item's time goes.

Part A, each in ONE ansible-playbook run: BENCH_TASK_N (20) items of ansible.builtin.ping, then as many of
  virtops.libvirt.vm {name, state: running} on a VM that already runs (every item `ok`); the same with
  community.libvirt.virt in the `ansible` package's venv, against that venv's ping. Ratios to ping.
Part B, BENCH_N (20) VMs, each with one virtio disk that is a linked clone of one base volume, defined and started:
  (a) floor: a loop of qemu-img create -b + virsh define (the XML of community/templates/domain.xml.j2) + virsh start
  (b) virtops.libvirt.vm with disks: [{backing_volume: base.qcow2, size: 1G}], state: running
  (c) community.libvirt: virt_volume (volume XML with <backingStore>), virt command=define (the same template),
      virt state=running
  (d) (b) again with the VMs present: every item must be `ok`
  After each: N VMs defined and running, each with its own 1 GiB overlay of base.qcow2 as its only disk, the
  definitions of the first and the last VM the same as the floor's, the item statuses in the log; after (d) the
  same UUIDs as after (b).
Part C, the VMs of Part B each with a cloud-init NoCloud seed (a CD-ROM) too:
  (e) floor: a loop of qemu-img create -b + genisoimage + virsh define (community/templates/domain_seed.xml.j2)
      + virsh start
  (f) virtops.libvirt.apply: ONE task of N vm items with cloud_init {pool, hostname}, the default `parallel`
  (g) community.libvirt: virt_volume, copy of user-data and meta-data, command genisoimage, virt define (the
      same template), virt state=running
  (h) (f) again with the VMs present: every item must be changed=false, the same UUIDs
  After each: as in Part B, and each VM's second disk is its seed (sda), an ISO with volume id cidata whose
  user-data and meta-data name the VM as its host name.
profile: the module processes of ping, vm and virt kept (ANSIBLE_KEEP_REMOTE_FILES) and run directly
  (helpers/profile_module.py): start-up, imports, -X importtime, cProfile of main().
BENCH_PARTS (A,B,C,profile) chooses the parts. python -m benchmarks vm_overhead (benchmarks/README.md).
"""

import glob
import json
import os
import re
import shutil
import sys

from . import _ansible, _session
from ._report import Report, Runs, table
from ._util import (HELPERS, PLAYBOOKS, BenchError, log, need_tools, now, qemu_img_info, run, virsh, virsh_lines, write,
                    xml_escape)
from ._virt import DirPool, domains, remove_domains

TEMPLATE = os.path.join(PLAYBOOKS, "community", "templates", "domain.xml.j2")
SEED_TEMPLATE = os.path.join(PLAYBOOKS, "community", "templates", "domain_seed.xml.j2")
PROFILER = os.path.join(HELPERS, "profile_module.py")
PREFIX = "vbench-vm"      # Part B domains vbench-vm1..N, volumes vbench-vmN.qcow2
IDLE = "vbench-idle"      # Part A domain, disk vbench-idle.qcow2
PARTS = ("A", "B", "C", "profile")


def domain_xml(name, disk, virt_type, seed=None):
    """The floor's definition: the template community.libvirt's define task renders, with the same values
    (with a seed: the template with the seed's CD-ROM)."""
    template = SEED_TEMPLATE if seed else TEMPLATE
    with open(template) as f:
        text = f.read()
    for key, value in (("vm_name", name), ("vm_disk", disk), ("bench_virt_type", virt_type), ("vm_seed", seed)):
        if value is not None:
            text = text.replace("{{ %s }}" % key, xml_escape(value))
    if "{{" in text:
        raise BenchError("%s has a placeholder the floor does not fill" % template)
    return text


def seed_files(directory, name):
    """The NoCloud files of VM `name` the floor and community.libvirt's playbook write (the module writes the
    same host name; its instance-id is a hash of the content): {file name in the ISO: path}."""
    files = {"user-data": "#cloud-config\nhostname: %s\n" % name,
             "meta-data": "instance-id: iid-%s\nlocal-hostname: %s\n" % (name, name)}
    return dict((f, write(os.path.join(directory, "%s.%s" % (name, f)), text)) for f, text in files.items())


def genisoimage(iso, files):
    """The seed ISO (volume id cidata, Joliet and Rock Ridge) of the files, as cloud-localds and the guides make it."""
    run(["genisoimage", "-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock", "-graft-points"]
        + ["%s=%s" % (f, path) for f, path in sorted(files.items())])


class Scenario(_session.Scenario):
    name = "vm_overhead"
    title = "per-task overhead of vm, VMs from linked clones, profile of one module process"
    files = ("playbooks/virtops/vm_overhead_a.yml", "playbooks/virtops/vm_overhead_b.yml",
             "playbooks/virtops/vm_overhead_profile.yml", "playbooks/virtops/apply.yml",
             "playbooks/community/vm_overhead_a.yml", "playbooks/community/vm_overhead_b.yml",
             "playbooks/community/vm_overhead_c.yml", "playbooks/community/vm_overhead_profile.yml",
             "playbooks/community/templates/domain.xml.j2", "playbooks/community/templates/domain_seed.xml.j2",
             "helpers/profile_module.py")

    def read_knobs(self):
        self.n = self.knobs.int("BENCH_N", 20)
        self.task_n = self.knobs.int("BENCH_TASK_N", 20)
        self.reps = self.knobs.int("BENCH_REPS", 1)
        self.profile_runs = self.knobs.int("BENCH_PROFILE_RUNS", 10)
        self.parts = self.knobs.subset("BENCH_PARTS", ",".join(PARTS), PARTS)
        self.virt_type = self.knobs.choice("BENCH_VIRT_TYPE", "kvm", ("kvm", "qemu"))
        self.ansible_version = self.knobs.name("BENCH_ANSIBLE_VERSION", "12.3.0")
        self.pool_name = self.knobs.name("BENCH_POOL", "vbench-vm")
        self.pool_dir = self.knobs.path("BENCH_POOL_DIR", "/var/tmp/virtops-bench-vm-pool")

    def preflight(self):
        super().preflight()
        if "C" in self.parts:
            need_tools("genisoimage", "isoinfo")

    # ------------------------------------------------------------------------------------------------ setup
    def run(self, session, stack):
        self.session = session
        self.build = session.build
        self.build.require("plugins/modules/vm.py", "plugins/modules/apply.py")
        self.community = session.community(self.ansible_version)
        self.community.require("plugins/modules/virt.py", "plugins/modules/virt_volume.py")
        self.uri = session.lab.uri(1)
        self.logs = session.scratch(self.name)
        self.seeds = os.path.join(self.logs, "seeds")
        if self.bench_domains(idle=True):
            raise BenchError("domains %s* or %s already exist on %s" % (PREFIX, IDLE, self.uri))
        self.pool = DirPool(self.uri, self.pool_name, self.pool_dir,
                            ("base.qcow2", PREFIX + "*.qcow2", PREFIX + "*-seed.iso", IDLE + ".qcow2")).create(stack)
        stack.callback(lambda: remove_domains(self.uri, self.bench_domains(idle=True)))
        virsh(self.uri, "vol-create-as", self.pool_name, "base.qcow2", "1G", "--format", "qcow2")
        self.base = self.pool.file("base.qcow2")
        self.make_vm(IDLE)
        self.runs = Runs()
        self.ref_xml = {}
        self.profile = None
        for rep in range(1, self.reps + 1):
            log("repetition %d/%d" % (rep, self.reps))
            if "A" in self.parts:
                self.part_a(rep)
            if "B" in self.parts:
                self.part_b(rep)
            if "C" in self.parts:
                self.part_c(rep)
        if "profile" in self.parts:
            self.profile = self.run_profile()
        return self.report()

    def bench_domains(self, idle=False):
        return domains(self.uri, lambda d: re.match("^%s[0-9]+$" % PREFIX, d) or (idle and d == IDLE))

    def make_vm(self, name, seeded=False):
        """qemu-img create of its overlay, (seeded) its NoCloud files and genisoimage of its seed, virsh define of
        the floor's XML, virsh start."""
        disk = self.pool.file(name + ".qcow2")
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", self.base, "-F", "qcow2", disk, "1G"])
        seed = self.pool.file(name + "-seed.iso") if seeded else None
        if seeded:
            genisoimage(seed, seed_files(self.seeds, name))
        xml = write(os.path.join(self.logs, name + ".xml"), domain_xml(name, disk, self.virt_type, seed))
        virsh(self.uri, "define", xml)
        virsh(self.uri, "start", name)

    def playbook(self, label, venv, name, bench_n, collections=None, env=None):
        return _ansible.playbook(
            label, venv, name, self.session.inventory, self.logs, collections=collections, env=env,
            extra_vars=dict(bench_pool=self.pool_name, bench_pool_dir=self.pool_dir, bench_n=bench_n,
                            bench_prefix=PREFIX, bench_idle=IDLE, bench_virt_type=self.virt_type,
                            bench_seed_dir=self.seeds))

    # ----------------------------------------------------------------------------------------------- Part A
    def part_a(self, rep):
        for key, venv, name, task, collections in (
                ("A", self.build.venv, "virtops/vm_overhead_a.yml", "vm", self.build.installed),
                ("C", self.community.venv, "community/vm_overhead_a.yml", "virt", None)):
            log("Part A: ping against %s state=running, %d items each" % (task, self.task_n))
            result = self.playbook("part%s-%d" % (key, rep), venv, name, self.task_n, collections)
            result.check_items("Timed ping", "ok", self.task_n)
            result.check_items("Timed %s" % task, "ok", self.task_n)
            if virsh(self.uri, "domstate", IDLE).strip() != "running":
                raise BenchError("Part A: %s is not running" % IDLE)
            t0, t1, t2, t3 = (float(v) for v in result.marks(4))
            marker = t3 - t2
            self.runs.add(key + "ping", 1000 * (t1 - t0 - marker) / self.task_n)
            self.runs.add(key + "mod", 1000 * (t2 - t1 - marker) / self.task_n)

    # ----------------------------------------------------------------------------------------------- Part B
    def part_b(self, rep):
        self.reset()
        log("(a) loop: qemu-img create + virsh define + virsh start, %d VMs" % self.n)
        t0 = now()
        for i in range(1, self.n + 1):
            self.make_vm("%s%d" % (PREFIX, i))
        seconds = now() - t0
        self.verify("a")
        self.runs.add("a", seconds)
        self.runs.add("a-inner", seconds)
        self.reset()
        log("(b) virtops.libvirt.vm, %d VMs" % self.n)
        self.variant("b", rep, self.build.venv, "virtops/vm_overhead_b.yml", "changed", ["VM"], self.build.installed)
        uuids = self.uuids()
        log("(d) virtops.libvirt.vm again, %d VMs present" % self.n)
        self.variant("d", rep, self.build.venv, "virtops/vm_overhead_b.yml", "ok", ["VM"], self.build.installed)
        if self.uuids() != uuids:
            raise BenchError("(d): the VMs were replaced (their UUIDs changed)")
        self.reset()
        log("(c) community.libvirt virt_volume + virt define + virt state=running, %d VMs" % self.n)
        self.variant("c", rep, self.community.venv, "community/vm_overhead_b.yml", "changed",
                     ["Clone volume", "Define", "Start"])
        self.reset()

    def variant(self, key, rep, venv, name, status, tasks, collections=None, seeded=False):
        result = self.playbook("%s-%d" % (key, rep), venv, name, self.n, collections)
        for task in tasks:
            result.check_items(task, status, self.n)
        self.verify(key, seeded)
        self.runs.add(key, result.seconds)
        self.runs.add(key + "-inner", _ansible.marker_interval(*result.marks(3)))

    def reset(self):
        remove_domains(self.uri, self.bench_domains())
        self.pool.delete_files(PREFIX + "*.qcow2")
        self.pool.delete_files(PREFIX + "*-seed.iso")
        shutil.rmtree(self.seeds, ignore_errors=True)
        os.makedirs(self.seeds)
        if self.bench_domains() or [v for v in self.pool.volumes() if v.startswith(PREFIX)]:
            raise BenchError("VMs, clones or seeds left after the reset")

    # ----------------------------------------------------------------------------------------------- Part C
    def part_c(self, rep):
        self.reset()
        log("(e) loop: qemu-img create + genisoimage + virsh define + virsh start, %d VMs" % self.n)
        t0 = now()
        for i in range(1, self.n + 1):
            self.make_vm("%s%d" % (PREFIX, i), seeded=True)
        seconds = now() - t0
        self.verify("e", seeded=True)
        self.runs.add("e", seconds)
        self.runs.add("e-inner", seconds)
        self.reset()
        log("(f) virtops.libvirt.apply, %d VMs with seeds in one task" % self.n)
        self.apply_vms("f", rep, True)
        uuids = self.uuids()
        log("(h) virtops.libvirt.apply again, %d VMs present" % self.n)
        self.apply_vms("h", rep, False)
        if self.uuids() != uuids:
            raise BenchError("(h): the VMs were replaced (their UUIDs changed)")
        self.reset()
        log("(g) community.libvirt virt_volume + copy + genisoimage + virt define + virt state=running, %d VMs" % self.n)
        self.variant("g", rep, self.community.venv, "community/vm_overhead_c.yml", "changed",
                     ["Clone volume", "User-data", "Meta-data", "Seed ISO", "Define", "Start"], seeded=True)
        self.reset()

    def apply_vms(self, key, rep, changed):
        """One virtops.libvirt.apply task of N vm items: Part B's VM (the loop of (b) written out as a list), each
        with a seed of its host name."""
        names = ["%s%d" % (PREFIX, i) for i in range(1, self.n + 1)]
        resources = [dict(kind="vm", name=name, memory=64, vcpus=1, virt_type=self.virt_type, graphics=dict(type="none"),
                          guest_agent=False, rng=False, state="running",
                          disks=[dict(pool=self.pool_name, volume=name + ".qcow2", backing_volume="base.qcow2",
                                      size="1G")],
                          cloud_init=dict(pool=self.pool_name, hostname=name)) for name in names]
        result = _ansible.playbook("%s-%d" % (key, rep), self.build.venv, "virtops/apply.yml", self.session.inventory,
                                   self.logs, collections=self.build.installed,
                                   extra_vars=dict(bench_resources=resources))
        _ansible.check_apply(result, ["resources[%d] (VM %r)" % (i, name) for i, name in enumerate(names)], changed)
        self.verify(key, seeded=True)
        self.runs.add(key, result.seconds)
        self.runs.add(key + "-inner", _ansible.marker_interval(*result.marks(3)))

    def uuids(self):
        return [virsh(self.uri, "domuuid", "%s%d" % (PREFIX, i)).strip() for i in sorted({1, self.n})]

    def normalized_xml(self, name):
        """The inactive definition without the VM's own name (in its disk's name too) and UUID."""
        xml = virsh(self.uri, "dumpxml", "--inactive", name).replace(name, "VM")
        return "\n".join(line for line in xml.splitlines() if "<uuid>" not in line)

    def verify(self, key, seeded=False):
        names = ["%s%d" % (PREFIX, i) for i in range(1, self.n + 1)]
        running = domains(self.uri, lambda d: d in names, state_running=True)
        defined = self.bench_domains()
        if len(running) != self.n or len(defined) != self.n:
            raise BenchError("(%s): %d VMs %s* defined and %d running, expected %d" % (
                key, len(defined), PREFIX, len(running), self.n))
        bad = []
        for name in names:
            disk = self.pool.file(name + ".qcow2")
            disks = [line.split(None, 1) for line in virsh_lines(self.uri, "domblklist", name)]
            seed = self.pool.file(name + "-seed.iso")
            if disks != [["vda", disk]] + ([["sda", seed]] if seeded else []):
                bad.append("%s: disks %s" % (name, disks))
                continue
            if seeded:
                bad += self.check_seed(name, seed)
            info = qemu_img_info(disk)
            got = (info.get("format"), info.get("virtual-size"), info.get("backing-filename"),
                   info.get("backing-filename-format"))
            if got != ("qcow2", 1 << 30, self.base, "qcow2"):
                bad.append("%s: %s" % (disk, got))
        if bad:
            raise BenchError("(%s): %s" % (key, "; ".join(bad)))
        for name in (names[0], names[-1]):
            xml = self.normalized_xml(name)
            if seeded not in self.ref_xml:
                self.ref_xml[seeded] = xml
            elif xml != self.ref_xml[seeded]:
                write(os.path.join(self.logs, "ref.xml"), self.ref_xml[seeded])
                write(os.path.join(self.logs, "%s-%s.xml" % (key, name)), xml)
                raise BenchError("(%s): the definition of %s differs from the first variant's (files in %s)"
                                 % (key, name, self.logs))

    @staticmethod
    def check_seed(name, iso):
        """Problems of the seed ISO of VM `name` (isoinfo, from genisoimage's package: not our ISO reader)."""
        bad = []
        if "Volume id: cidata" not in run(["isoinfo", "-d", "-i", iso]).splitlines():
            bad.append("%s: volume id is not cidata" % iso)
        for path, want in (("/user-data", "hostname: %s" % name), ("/meta-data", "local-hostname: %s" % name)):
            text = run(["isoinfo", "-J", "-x", path, "-i", iso])
            if want not in text.splitlines():
                bad.append("%s: %s has no line %r: %r" % (iso, path, want, text[:200]))
        return bad

    # ---------------------------------------------------------------------------------------------- profile
    def run_profile(self):
        log("profile: the module processes of ping, vm and virt, each run directly %d times" % self.profile_runs)
        files = {}
        for key, venv, name, module, collections in (
                ("virtops", self.build.venv, "virtops/vm_overhead_profile.yml", "vm", self.build.installed),
                ("community", self.community.venv, "community/vm_overhead_profile.yml", "virt", None)):
            keep = os.path.join(self.logs, "keep-" + key)
            os.makedirs(keep, exist_ok=True)
            self.playbook("profile-" + key, venv, name, 1, collections,
                          env=dict(ANSIBLE_KEEP_REMOTE_FILES="1", ANSIBLE_REMOTE_TMP=keep))
            for mod in (["ping", module] if key == "virtops" else [module]):
                found = sorted(glob.glob(os.path.join(keep, "**", "AnsiballZ_%s.py" % mod), recursive=True))
                if not found:
                    raise BenchError("profile: no kept AnsiballZ_%s.py in %s" % (mod, keep))
                files[mod] = found[0]
        order = ["ping", "vm", "virt"]
        paths = [files[m] for m in order]
        py = self.build.python
        runs = self.helper(py, "runs", str(self.profile_runs), *paths)
        imports = self.helper(py, "imports", str(self.profile_runs), *paths)
        importtime = dict((m, self.helper(py, "importtime", files[m])) for m in ("vm", "virt"))
        args = json.dumps(dict(uri=self.uri, name=IDLE, state="running"))
        mains = dict(
            vm=self.helper(py, "main", "ansible_collections.virtops.libvirt.plugins.modules.vm", args,
                           pythonpath=self.build.installed),
            virt=self.helper(self.community.python, "main", "ansible_collections.community.libvirt.plugins.modules.virt",
                             args))
        for mod, res in mains.items():
            if '"failed": true' in res["result"] or '"changed": true' in res["result"]:
                raise BenchError("profile: %s main() did not report an unchanged run: %s" % (mod, res["result"]))
        return dict(order=order, runs=runs, imports=dict(zip(order, imports)), importtime=importtime, mains=mains,
                    sizes=dict((m, os.path.getsize(files[m])) for m in order))

    def helper(self, python, *args, pythonpath=None):
        env = dict(os.environ, PYTHONPATH=pythonpath) if pythonpath else None
        return json.loads(run([python, PROFILER] + list(args), env=env))

    # ----------------------------------------------------------------------------------------------- report
    def report(self):
        report = Report(self.name, self.title)
        report.fact("parts %s; guests: %s, 64 MiB, 1 vCPU, q35, SeaBIOS, no OS; pool dir %s" % (
            ",".join(self.parts), self.virt_type, self.pool_dir))
        report.fact("repetitions: %d (median shown); Part A: %d items per task, ratios to ping of the same "
                    "playbook run; Parts B and C: %d VMs, ratios of whole runs to the median of (a) or (e)"
                    % (self.reps, self.task_n, self.n))
        rows = self.rows()
        report.section(table(
            ["variant", "what", "ms per item, whole run", "ms per item in the playbook", "ratio", "all runs (ms per item)"],
            rows, right=(2, 3, 4)) if rows else "(Parts A, B and C were not run: BENCH_PARTS)")
        if "C" in self.parts:
            report.section(self.part_c_summary())
        if self.profile:
            report.section(self.profile_table())
            report.attach("profile.txt", self.profile_text())
        report.data = dict(n=self.n, task_n=self.task_n, runs=self.runs.values, profile=self.profile)
        return report

    def rows(self):
        r = self.runs
        rows = []
        if "A" in self.parts:
            cl = "ansible %s venv" % self.ansible_version
            for key, label, what, venv in (
                    ("Aping", "A1", "ansible.builtin.ping", "virtops venv"),
                    ("Amod", "A2", "virtops.libvirt.vm `state: running` (running VM, all ok)", "virtops venv"),
                    ("Cping", "A3", "ansible.builtin.ping", cl),
                    ("Cmod", "A4", "community.libvirt.virt `state: running` (running VM, all ok)", cl)):
                base = key[0] + "ping"
                rows.append([label, "%s, %s" % (what, venv), "-", "%.0f" % r.median(key),
                             "%.2fx of %s" % (r.ratio(key, base), "A1" if key[0] == "A" else "A3"),
                             r.listed(key, "%.0f")])
        if "B" in self.parts:
            for key, what in (
                    ("a", "floor: loop of `qemu-img create -b` + `virsh define` + `virsh start`"),
                    ("b", "virtops.libvirt.vm `disks: [{backing_volume}]`, `state: running`, loop (create)"),
                    ("c", "community.libvirt %s: `virt_volume` (`<backingStore>`), `virt command=define` "
                          "(template), `virt state=running`: 3 loops" % self.community.cl_version),
                    ("d", "(b) again, %d VMs present (all ok)" % self.n)):
                rows.append(["(%s)" % key, what, "%.0f" % (1000 * r.median(key) / self.n),
                             "%.0f" % (1000 * r.median(key + "-inner") / self.n), "%.2fx of (a)" % r.ratio(key, "a"),
                             r.listed(key, "%.0f", 1000.0 / self.n)])
        if "C" in self.parts:
            for key, what in (
                    ("e", "floor with seeds: loop of `qemu-img create -b` + `genisoimage` + `virsh define` + "
                          "`virsh start`"),
                    ("f", "virtops.libvirt.apply: one task of %d `vm` items, `disks: [{backing_volume}]`, "
                          "`cloud_init: {pool, hostname}`, `state: running`, `parallel` default (4) (create)" % self.n),
                    ("g", "community.libvirt %s: `virt_volume`, `copy` of user-data and meta-data, `command: "
                          "genisoimage`, `virt command=define`, `virt state=running`: 5 loops" % self.community.cl_version),
                    ("h", "(f) again, %d VMs present (all changed=false)" % self.n)):
                ratio = "%.2fx of (e)" % r.ratio(key, "e")
                if key in ("f", "h"):
                    ratio += ", %.2fx of (g)" % r.ratio(key, "g")
                rows.append(["(%s)" % key, what, "%.0f" % (1000 * r.median(key) / self.n),
                             "%.0f" % (1000 * r.median(key + "-inner") / self.n), ratio,
                             r.listed(key, "%.0f", 1000.0 / self.n)])
        return rows

    def part_c_summary(self):
        """Part C's ratios in the playbook (without Ansible's start-up), and the rerun's."""
        r = self.runs
        return ("Part C in the playbook (the tasks alone): (f) %.2fx of (e), %.2fx of (g); the rerun (h) %.2fx of (f) "
                "(whole runs: %.2fx)." % (r.ratio("f-inner", "e-inner"), r.ratio("f-inner", "g-inner"),
                                          r.ratio("h-inner", "f-inner"), r.ratio("h", "f")))

    def profile_table(self):
        p, r = self.profile, self.runs
        order = p["order"]
        item = dict(ping=r.median("Aping") if "Aping" in r else None, vm=r.median("Amod") if "Amod" in r else None,
                    virt=r.median("Cmod") if "Cmod" in r else None)
        process = dict(zip(order, p["runs"]["files"]))
        start = p["runs"]["startup"]
        basic = dict((m, p["imports"][m]["basic"]) for m in order)
        module = dict((m, p["imports"][m]["module"]) for m in order)
        main = dict(ping=0.0, vm=p["mains"]["vm"]["main_ms"], virt=p["mains"]["virt"]["main_ms"])
        libvirt = dict(ping=0.0, vm=p["mains"]["vm"]["libvirt_ms"], virt=p["mains"]["virt"]["libvirt_ms"])
        rest = dict((m, process[m] - start - basic[m] - module[m] - main[m]) for m in order)
        controller = dict((m, item[m] - process[m] if item[m] is not None else None) for m in order)
        size = dict((m, p["sizes"][m] / 1024.0) for m in order)

        def row(label, values):
            cells = ["-" if values[m] is None else "%.0f" % values[m] for m in order]
            diffs = ["-" if values[m] is None or values["ping"] is None else "%.0f" % (values[m] - values["ping"])
                     for m in ("vm", "virt")]
            return [label] + cells + diffs

        rows = [
            row("one loop item in Part A (median; ping of the virtops venv)", item),
            row("the module process: its AnsiballZ file run directly (median of %d)" % self.profile_runs, process),
            row("- Python start-up (`python -c pass`)", dict((m, start) for m in order)),
            row("- import `ansible.module_utils.basic` from the payload zip (no .pyc)", basic),
            row("- import the module and its module_utils from the zip", module),
            row("- the module's work after the imports (cProfile of `main()`, one run)", main),
            row("-- of which libvirt calls (connection open and close included)", libvirt),
            row("- the rest (writing and unpacking the payload, exit)", rest),
            row("Ansible on the controller (item - module process)", controller),
            row("size of the AnsiballZ file (KiB)", size),
        ]
        lines = ["Where one item's time goes (ms; vm and virt `state: running` on a running VM):", "",
                 table(["", "ping", "vm", "virt", "vm - ping", "virt - ping"], rows, right=(1, 2, 3, 4, 5)), ""]
        for mod in ("vm", "virt"):
            it = p["importtime"][mod]
            groups = ", ".join("%s %.0f" % (g, ms) for g, ms in sorted(it["groups"].items(), key=lambda i: -i[1])
                               if ms >= 0.5)
            slowest = ", ".join("%s %.0f" % (m["name"].replace("ansible_collections.", ""), m["own"])
                                for m in it["by_own"][:8])
            calls = ", ".join("%s x%d %.1f" % tuple(c) for c in p["mains"][mod]["libvirt_calls"][:6])
            lines += ["- %s, `-X importtime` (own ms, inflated by the measurement), by origin: %s" % (mod, groups),
                      "- %s, slowest imports: %s" % (mod, slowest),
                      "- %s, libvirt calls in `main()` (count, ms): %s" % (mod, calls or "none")]
        lines.append("- the whole `-X importtime` lists and cProfile listings: the -profile.txt file of this run")
        return "\n".join(lines)

    def profile_text(self):
        p = self.profile
        out = []
        for mod in ("vm", "virt"):
            it = p["importtime"][mod]
            out += ["== %s: python -X importtime of its AnsiballZ file (one run, ms): %.0f ms of imports" % (
                mod, it["total"]), "", "by origin (own ms):"]
            out += ["  %8.1f  %s" % (ms, g) for g, ms in sorted(it["groups"].items(), key=lambda i: -i[1])]
            for key, label in (("by_own", "own"), ("by_cumulative", "cumulative")):
                out += ["", "top 30 by %s time:    own    cumulative" % label]
                out += ["  %8.1f  %8.1f  %s" % (m["own"], m["cumulative"], m["name"]) for m in it[key]]
            main = p["mains"][mod]
            out += ["", "== %s: cProfile of main() (import %.0f ms, main %.0f ms, libvirt calls %.1f ms)" % (
                mod, main["import_ms"], main["main_ms"], main["libvirt_ms"]), "", main["top"], "", ""]
        return "\n".join(out)


if __name__ == "__main__":
    sys.exit(_session.main([Scenario.name]))
