# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_stats: run-time statistics of BENCH_VMS (100) running VMs, vm_info `statistics: true` against virsh per VM.

One lab hypervisor; BENCH_VMS BIOS-only domains (no OS: SeaBIOS finds nothing to boot and waits), BENCH_VIRT_TYPE
(kvm), each with a 16 MiB raw disk and a NIC on an isolated network of the scenario's own, defined and started by
helpers/stats_vms.py. Every variant samples every VM twice, BENCH_INTERVAL (1) seconds apart, as rates need:
  (a) floor: a loop of `virsh domstats VM`, one virsh process per VM and sample (what a cron script per VM does)
  (b) `virsh domstats` without names: libvirt's bulk call, once per sample
  (b1) the same with the groups and flags vm_info asks for: state, CPU total, balloon, interface, block; running VMs
      only (--list-active), --nowait
  (b2) the same with the vCPU group too and without --nowait: what vm_info asked for before 2026-12-07 22:00
  (c) one ansible-playbook run of playbooks/virtops/vm_stats.yml: one vm_info task, statistics: true
  (d) one ansible-playbook run of the collection's playbooks/stats.yml (vm_info and host_info, lines appended to a
      file), as a user runs it every minute
  (e) (d) with host_info's full facts (statistics: true instead of statistics_only: true, as before 2026-12-07 22:00)
Then one profile of each gather function (helpers/stats_profile.py: cProfile, libvirt calls counted) goes into the
report: vm_info as (c) asks, host_info statistics_only and with its full facts.
Checks: (a), (b) every VM's output has cpu.time, block.0.wr.bytes and net.0.rx.bytes; (c) every VM has statistics
with a CPU percent, one disk and one NIC with rates; (d) the file grew by one line per VM plus one for the host.
python -m benchmarks vm_stats (benchmarks/README.md).
"""

import base64
import json
import os
import re
import sys
import time

from . import _ansible, _session
from ._report import Report, Runs, table
from ._util import ROOT, BenchError, log, now, run, virsh, write
from ._virt import domains

PREFIX = "vbstat-"
NETWORK = "vbstats"
HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers", "stats_vms.py")
PROFILER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers", "stats_profile.py")
#: the groups and flags of vm_info's bulk call (b1), and what it asked for before (b2)
OURS = ("--state", "--cpu-total", "--balloon", "--interface", "--block", "--list-active", "--nowait")
BEFORE = ("--state", "--cpu-total", "--balloon", "--vcpu", "--interface", "--block")
NETWORK_XML = "<network><name>%s</name><bridge name='vbstats0'/></network>" % NETWORK


class Scenario(_session.Scenario):
    name = "vm_stats"
    title = "statistics of 100 running VMs: vm_info `statistics: true` against `virsh domstats` per VM"
    files = ("helpers/stats_vms.py", "helpers/stats_profile.py", "playbooks/virtops/vm_stats.yml", "../playbooks/stats.yml")

    def read_knobs(self):
        self.vms = self.knobs.int("BENCH_VMS", 100)
        self.reps = self.knobs.int("BENCH_REPS", 3)
        self.interval = self.knobs.int("BENCH_INTERVAL", 1)
        self.virt_type = self.knobs.choice("BENCH_VIRT_TYPE", "kvm", ("kvm", "qemu"))

    def run(self, session, stack):
        self.session = session
        session.build.require("plugins/modules/vm_info.py", "plugins/filter/stats_lines.py")
        self.work = session.scratch(self.name)
        self.uri = session.lab.uri(1)
        if domains(self.uri, lambda d: d.startswith(PREFIX)):
            raise BenchError("%s has %s* domains already" % (self.uri, PREFIX))
        if virsh(self.uri, "net-info", NETWORK, check=False) is not None:
            raise BenchError("network %s already exists on %s" % (NETWORK, self.uri))
        stack.callback(self.cleanup)
        virsh(self.uri, "net-define", write(os.path.join(self.work, "net.xml"), NETWORK_XML))
        virsh(self.uri, "net-start", NETWORK)
        log("defining and starting %d BIOS-only %s VMs" % (self.vms, self.virt_type))
        t0 = now()
        self.helper("start", PREFIX, str(self.vms), self.uri, self.virt_type, self.work, NETWORK)
        self.started_s = now() - t0
        self.names = sorted(domains(self.uri, lambda d: d.startswith(PREFIX), state_running=True))
        if len(self.names) != self.vms:
            raise BenchError("%d of %d VMs run" % (len(self.names), self.vms))
        self.stats_file = os.path.join(self.work, "stats.jsonl")
        self.full_facts = self.full_facts_playbook()
        self.runs = Runs()
        for rep in range(1, self.reps + 1):
            log("repetition %d/%d" % (rep, self.reps))
            self.runs.add("a", self.virsh_per_vm())
            self.runs.add("b", self.virsh_bulk())
            self.runs.add("b1", self.virsh_bulk(OURS))
            self.runs.add("b2", self.virsh_bulk(BEFORE))
            self.module(rep)
            self.user_playbook(rep)
            self.user_playbook(rep, "e")
        self.profiles = [(label, self.profile(*args)) for label, args in (
            ("vm_info, as (c) asks", ("vm_info", "name_pattern=%s*" % PREFIX, "addresses=false")),
            ("host_info statistics_only, as (d) asks", ("host_info", "statistics_only=true")),
            ("host_info with its full facts, as (e) asks", ("host_info",)))]
        return self.report()

    def full_facts_playbook(self):
        """playbooks/stats.yml with host_info's full facts (e): a copy in the work dir, one option changed."""
        with open(os.path.join(ROOT, "playbooks", "stats.yml")) as f:
            text = f.read()
        if text.count("statistics_only: true") != 1:
            raise BenchError("playbooks/stats.yml: expected one host_info task with statistics_only: true")
        return write(os.path.join(self.work, "stats-full-facts.yml"), text.replace("statistics_only: true", "statistics: true"))

    def profile(self, *args):
        """The text helpers/stats_profile.py prints for one gather run."""
        out = run([self.session.build.python, PROFILER, self.uri] + list(args),
                  env=dict(os.environ, PYTHONPATH=self.session.build.installed))
        return out.strip()

    def helper(self, *args):
        run([self.session.build.python, HELPER] + list(args), env=dict(os.environ, PYTHONPATH=self.session.build.installed))

    def cleanup(self):
        try:
            self.helper("remove", PREFIX, self.uri)
        except BenchError as exc:
            log("warning: could not remove every %s* domain: %s" % (PREFIX, exc))
        virsh(self.uri, "net-destroy", NETWORK, check=False)
        virsh(self.uri, "net-undefine", NETWORK, check=False)
        for name in os.listdir(self.work):
            if name.startswith(PREFIX) and name.endswith(".img"):
                os.unlink(os.path.join(self.work, name))

    # ---------------------------------------------------------------------------------------------- variants
    @staticmethod
    def check_domstats(text, names, label):
        """Every VM of names has its CPU time, the writes of its disk and the bytes of its NIC in virsh's output."""
        blocks = dict((m.group(1), m.group(2)) for m in re.finditer(r"Domain: '([^']+)'\n((?:  .*\n?)*)", text))
        for name in names:
            body = blocks.get(name, "")
            if not all(key in body for key in ("cpu.time=", "block.0.wr.bytes=", "net.0.rx.bytes=")):
                raise BenchError("%s: no complete statistics of %s in virsh domstats" % (label, name))

    def virsh_per_vm(self):
        """(a): seconds of two samples, each a virsh process per VM, with the interval between them."""
        t0 = now()
        for sample in (1, 2):
            if sample == 2:
                time.sleep(self.interval)
            for name in self.names:
                self.check_domstats(virsh(self.uri, "domstats", name), [name], "(a)")
        return now() - t0

    def virsh_bulk(self, groups=()):
        """(b), (b1), (b2): seconds of two `virsh domstats` of all domains, with the interval between them."""
        t0 = now()
        for sample in (1, 2):
            if sample == 2:
                time.sleep(self.interval)
            self.check_domstats(virsh(self.uri, "domstats", *groups), self.names, "(b) %s" % " ".join(groups))
        return now() - t0

    def module(self, rep):
        result = _ansible.playbook(
            "module-%d" % rep, self.session.build.venv, "virtops/vm_stats.yml", self.session.inventory, self.work,
            collections=self.session.build.installed, extra_vars=dict(prefix=PREFIX, interval=self.interval))
        t0, t1, t2 = result.marks(3)
        found = re.findall(r'"BENCH_STATS ([A-Za-z0-9+/=]*)"', result.text)
        stats = json.loads(base64.b64decode(found[-1]).decode("utf-8")) if found else []
        complete = [s for s in stats if s and s["cpu_percent"] is not None and len(s["disks"]) == 1
                    and len(s["interfaces"]) == 1 and s["disks"][0]["write_bytes_per_second"] is not None
                    and s["interfaces"][0]["rx_bytes_per_second"] is not None and s["interval"] >= self.interval]
        if len(stats) != self.vms or len(complete) != self.vms:
            raise BenchError("(c): %d VMs, %d with complete statistics, expected %d (log %s)"
                             % (len(stats), len(complete), self.vms, result.log))
        self.runs.add("c", result.seconds)
        self.runs.add("c-task", _ansible.marker_interval(t0, t1, t2))
        self.cpu_percents = [s["cpu_percent"] for s in stats]

    def user_playbook(self, rep, key="d"):
        before = self.lines()
        path = self.full_facts if key == "e" else os.path.join(ROOT, "playbooks", "stats.yml")
        result = _ansible.playbook(
            "user-%s-%d" % (key, rep), self.session.build.venv, path, self.session.inventory,
            self.work, collections=self.session.build.installed,
            extra_vars=dict(stats_file=self.stats_file, stats_interval=self.interval, stats_hosts="lab1"))
        added = self.lines()[len(before):]
        mine = [row for row in added if (row.get("vm") or "").startswith(PREFIX)]
        hosts = [row for row in added if row["kind"] == "host"]
        if len(mine) != self.vms or len(hosts) != 1:
            raise BenchError("(%s): the file got %d VM lines and %d host lines, expected %d and 1 (log %s)"
                             % (key, len(mine), len(hosts), self.vms, result.log))
        self.runs.add(key, result.seconds)

    def lines(self):
        if not os.path.exists(self.stats_file):
            return []
        with open(self.stats_file) as f:
            return [json.loads(line) for line in f if line.strip()]

    # ----------------------------------------------------------------------------------------------- report
    def report(self):
        report = Report(self.name, self.title)
        runs = self.runs
        report.fact("%d running BIOS-only %s VMs (32 MiB, 1 vCPU, one disk, one NIC), started in %.0f s; interval %d s; "
                    "repetitions: %d (median shown)" % (self.vms, self.virt_type, self.started_s, self.interval, self.reps))
        rows = []
        for key, label, calls in (
                ("a", "(a) floor: `virsh domstats VM` per VM, two samples", "%d virsh runs" % (2 * self.vms)),
                ("b", "(b) `virsh domstats` (bulk, all groups), two samples", "2 virsh runs"),
                ("b1", "(b1) `virsh domstats %s`, two samples" % " ".join(OURS), "2 virsh runs"),
                ("b2", "(b2) `virsh domstats %s`, two samples" % " ".join(BEFORE), "2 virsh runs"),
                ("c", "(c) ansible-playbook: one vm_info task, `statistics: true` (whole run)", "2 libvirt calls"),
                ("c-task", "(c) the vm_info task alone", "2 libvirt calls"),
                ("d", "(d) ansible-playbook playbooks/stats.yml (vm_info, host_info, file; whole run)", ""),
                ("e", "(e) (d) with host_info's full facts (`statistics: true`)", "")):
            cost = runs.median(key) - self.interval
            rows.append([label, calls, "%.2f" % runs.median(key), "%.2f" % cost,
                         "%.1f" % (1000.0 * cost / self.vms), "%.2fx" % runs.ratio(key, "a"), runs.listed(key, "%.2f")])
        report.section(table(["variant", "statistics calls", "seconds", "beyond the interval (s)", "ms per VM",
                              "ratio to (a)", "all runs (s)"], rows, right=(2, 3, 4, 5)))
        whole = runs.median("d")
        report.section("- Every minute against %d VMs: %s. The user playbook (d) takes %.1f s, of which %d s is the "
                       "sampling interval; one run a minute leaves %.0f s of every minute free."
                       % (self.vms, "holds" if whole < 30 else "does NOT hold", whole, self.interval, 60 - whole))
        report.section("- CPU percent of the idle VMs in the last (c): median %.2f, max %.2f"
                       % (sorted(self.cpu_percents)[len(self.cpu_percents) // 2], max(self.cpu_percents)))
        report.section("- Within the run: (b1)/(b2) %.2fx (the vCPU group and waiting for busy monitors), (d)/(e) %.2fx "
                       "(host_info statistics_only against its full facts)" % (runs.ratio("b1", "b2"), runs.ratio("d", "e")))
        for label, text in self.profiles:
            report.section("Profile of one %s:\n\n```\n%s\n```" % (label, text))
        report.data = dict(runs=runs.values, started_s=self.started_s, profiles=dict(self.profiles))
        return report


if __name__ == "__main__":
    sys.exit(_session.main([Scenario.name]))
