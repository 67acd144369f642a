# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""inventory: listing BENCH_VMS (300) stopped VMs on BENCH_HOSTS (3) hypervisors, virtops.libvirt.libvirt against
community.libvirt.libvirt, timed around whole `ansible-inventory --list` runs, BENCH_REPS (3) times, interleaved:

  floor  `virsh list --all --name` of the hosts, one after the other
  (0)    ansible-inventory of an empty YAML inventory: Ansible's start-up, in each venv
  (1)    virtops.libvirt.libvirt, one source with the URIs (defaults: 8 workers, ip_source lease)
  (2)    (1) with `workers: 1`;  (3) (1) with `ip_source: none`;  (8) (1) with `variables` (FEW, no definition read)
  (4)    community.libvirt.libvirt, one source per URI, in one ansible-inventory run
  (5)-(7) (1), (2) and (4) through helpers/relay.py, which adds a round trip of BENCH_RTT_MS (2; 0: left out)

The VMs are made by the collection's own domain XML writer (helpers/define_vms.py). Every listing is checked:
exactly BENCH_VMS bench hosts, BENCH_VMS / BENCH_HOSTS per hypervisor, all stopped; ours print no warning.
python -m benchmarks inventory (benchmarks/README.md).
"""

import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter

from . import _session
from ._ansible import ansible_env
from ._report import Report, Runs, table
from ._util import HELPERS, BenchError, log, now, run, tail, virsh_lines, write
from ._virt import domains

PREFIX = "vbinv-"  # domains vbinv-h<host>-<nnn>
FEW = "[hypervisor, uri, name, uuid, state]"  # variant (8)
DEFINE = os.path.join(HELPERS, "define_vms.py")
RELAY = os.path.join(HELPERS, "relay.py")


def plain(value):
    """A value of ansible-inventory's JSON, without the wrapper of an unsafe string."""
    return value["__ansible_unsafe"] if isinstance(value, dict) and "__ansible_unsafe" in value else value


def source(plugin, uris, extra=""):
    return "plugin: %s\nuris:\n%s%s" % (plugin, "".join('  - "%s"\n' % u for u in uris), extra)


class Scenario(_session.Scenario):
    name = "inventory"
    title = "VMs on several hypervisors, virtops.libvirt.libvirt against community.libvirt.libvirt"
    files = ("helpers/define_vms.py", "helpers/relay.py")

    def read_knobs(self):
        self.vms = self.knobs.int("BENCH_VMS", 300)
        self.hosts = self.knobs.int("BENCH_HOSTS", 3, maximum=20)
        self.reps = self.knobs.int("BENCH_REPS", 3)
        self.rtt = self.knobs.int("BENCH_RTT_MS", 2, minimum=0)
        self.ansible_version = self.knobs.name("BENCH_ANSIBLE_VERSION", "12.3.0")
        if self.vms % self.hosts:
            raise BenchError("BENCH_VMS (%d) must be a multiple of BENCH_HOSTS (%d)" % (self.vms, self.hosts))
        self.per_host = self.vms // self.hosts

    def run(self, session, stack):
        self.build = session.build
        self.build.require("plugins/inventory/libvirt.py")
        self.community = session.community(self.ansible_version)
        self.community.require("plugins/inventory/libvirt.py")
        self.work = session.scratch(self.name)
        self.uris = session.lab.uris(self.hosts)
        for uri in self.uris:
            if domains(uri, lambda d: d.startswith(PREFIX)):
                raise BenchError("%s has %s* domains already" % (uri, PREFIX))
        log("defining %d VMs (%d per host)" % (self.vms, self.per_host))
        stack.callback(self.undefine)
        t0 = now()
        self.define_helper("define", PREFIX, str(self.per_host), *self.uris)
        self.define_s = now() - t0
        self.slow_uris = self.start_relay(stack) if self.rtt else []
        self.write_sources()
        self.runs, self.cpu, self.sizes = Runs(), Runs(), {}
        ours, theirs = self.build.venv, self.community.venv
        log("warm-up (one untimed listing with each plugin)")
        self.inventory("warm-ours", ours, "ours/default.libvirt.yml", "ours")
        self.inventory("warm-theirs", theirs, "theirs", "theirs")
        self.runs, self.cpu = Runs(), Runs()
        for rep in range(1, self.reps + 1):
            log("repetition %d/%d" % (rep, self.reps))
            self.floor()
            self.inventory("empty-ours", ours, "empty.yml", None, rep)
            self.inventory("empty-theirs", theirs, "empty.yml", None, rep)
            self.inventory("ours", ours, "ours/default.libvirt.yml", "ours", rep)
            self.inventory("theirs", theirs, "theirs", "theirs", rep)
            self.inventory("serial", ours, "ours/serial.libvirt.yml", "ours", rep)
            self.inventory("noaddr", ours, "ours/noaddr.libvirt.yml", "ours", rep)
            self.inventory("few", ours, "ours/few.libvirt.yml", "ours", rep)
            if self.slow_uris:
                self.inventory("slow-ours", ours, "slow-ours/default.libvirt.yml", "ours", rep)
                self.inventory("slow-serial", ours, "slow-ours/serial.libvirt.yml", "ours", rep)
                self.inventory("slow-theirs", theirs, "slow-theirs", "theirs", rep)
        return self.report()

    # ------------------------------------------------------------------------------------------------ setup
    def define_helper(self, *args):
        run([self.build.python, DEFINE] + list(args), env=dict(os.environ, PYTHONPATH=self.build.installed))

    def undefine(self):
        try:
            self.define_helper("undefine", PREFIX, *self.uris)
        except BenchError as exc:
            log("warning: could not remove every %s* domain: %s" % (PREFIX, exc))

    def start_relay(self, stack):
        pairs, slow = [], []
        for i, uri in enumerate(self.uris, 1):
            sock = os.path.join(self.work, "relay%d.sock" % i)
            pairs.append("%s=%s" % (sock, uri.split("socket=", 1)[1]))
            slow.append("qemu:///system?socket=%s" % sock)
        relay_log = os.path.join(self.work, "relay.log")
        with open(relay_log, "w") as out:
            proc = subprocess.Popen([self.build.python, RELAY, str(self.rtt)] + pairs, stdout=out,
                                    stderr=subprocess.STDOUT)

        def stop():
            proc.terminate()
            proc.wait()
        stack.callback(stop)
        t0 = now()
        while "ready" not in tail(relay_log):
            if proc.poll() is not None or now() - t0 > 10:
                raise BenchError("the relay did not start:\n%s" % tail(relay_log))
            time.sleep(0.2)
        # what a connection costs (virsh version: open, a few RPCs, close), through the relay and directly
        t0 = now()
        virsh_lines(slow[0], "version")
        self.relay_check = now() - t0
        t0 = now()
        virsh_lines(self.uris[0], "version")
        self.direct_check = now() - t0
        return slow

    def write_sources(self):
        for d in ("ours", "theirs") + (("slow-ours", "slow-theirs") if self.slow_uris else ()):
            os.makedirs(os.path.join(self.work, d))
        for prefix, uris in (("", self.uris), ("slow-", self.slow_uris)):
            if not uris:
                continue
            ours = source("virtops.libvirt.libvirt", uris)
            write(os.path.join(self.work, prefix + "ours", "default.libvirt.yml"), ours)
            write(os.path.join(self.work, prefix + "ours", "serial.libvirt.yml"), ours + "workers: 1\n")
            if not prefix:
                write(os.path.join(self.work, "ours", "noaddr.libvirt.yml"), ours + "ip_source: none\n")
                write(os.path.join(self.work, "ours", "few.libvirt.yml"), ours + "variables: %s\n" % FEW)
            for i, uri in enumerate(uris, 1):
                write(os.path.join(self.work, prefix + "theirs", "h%d.yml" % i),
                      'plugin: community.libvirt.libvirt\nuri: "%s"\n' % uri)
        write(os.path.join(self.work, "empty.yml"), "all: {}\n")

    # --------------------------------------------------------------------------------------------- measure
    def floor(self):
        t0 = now()
        count = sum(len([d for d in virsh_lines(u, "list", "--all", "--name") if d.startswith(PREFIX)])
                    for u in self.uris)
        seconds = now() - t0
        if count != self.vms:
            raise BenchError("virsh lists %d bench VMs, expected %d" % (count, self.vms))
        self.runs.add("virsh", seconds)

    def inventory(self, label, venv, src, kind, rep=0):
        """One timed ansible-inventory --list run; kind ours|theirs: check the listing, None: no check."""
        out, err = (os.path.join(self.work, "%s-%d.%s" % (label, rep, ext)) for ext in ("json", "log"))
        env = ansible_env(self.build.installed if venv == self.build.venv else None,
                          dict(ANSIBLE_INVENTORY_UNPARSED_FAILED="1", ANSIBLE_LOCALHOST_WARNING="0"))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(out, "w") as stdout, open(err, "w") as stderr:
            t0 = now()
            proc = subprocess.run([os.path.join(venv, "bin", "ansible-inventory"), "-i", src, "--list"], env=env,
                                  cwd=self.work, stdout=stdout, stderr=stderr, check=False)
            seconds = now() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise BenchError("%s: ansible-inventory failed (exit %d):\n%s" % (label, proc.returncode, tail(err)))
        if kind:
            self.check_listing(label, out, kind)
        # community.libvirt warns about the UUID groups it makes; our runs must be clean
        if kind != "theirs" and "WARNING" in tail(err, 100000):
            raise BenchError("%s: warnings (log %s):\n%s" % (label, err, tail(err)))
        self.runs.add(label, seconds)
        self.cpu.add(label, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        self.sizes[label] = os.path.getsize(out)

    def check_listing(self, label, path, kind):
        with open(path) as f:
            hostvars = json.load(f)["_meta"]["hostvars"]
        mine = sorted(h for h in hostvars if h.startswith(PREFIX))
        if len(mine) != self.vms:
            raise BenchError("%s: %d bench hosts in the listing, expected %d" % (label, len(mine), self.vms))
        if kind == "ours":
            per = Counter(plain(hostvars[h]["libvirt_hypervisor"]) for h in mine)
            states = Counter(plain(hostvars[h]["libvirt_state"]) for h in mine)
            if states != Counter(stopped=self.vms):
                raise BenchError("%s: states %s" % (label, dict(states)))
        else:
            per = Counter(h.split("-")[1] for h in mine)  # vbinv-h1-001
            if any(plain(hostvars[h]["info"]["state"]) != "shutoff" for h in mine):
                raise BenchError("%s: not every VM is shutoff" % label)
        if sorted(per.values()) != [self.per_host] * self.hosts:
            raise BenchError("%s: VMs per hypervisor %s" % (label, dict(per)))

    # ----------------------------------------------------------------------------------------------- report
    def report(self):
        r, c = self.runs, self.cpu
        report = Report(self.name, "%d VMs on %d hypervisors, virtops.libvirt.libvirt against community.libvirt %s" % (
            self.vms, self.hosts, self.community.cl_version))
        report.fact("%d stopped VMs, %d on each of %d lab hypervisors (defined in %.1f s through the API); "
                    "repetitions: %d (median shown)" % (self.vms, self.per_host, self.hosts, self.define_s, self.reps))
        rows = [["floor", "`virsh list --all --name` of the %d hosts, one after the other" % self.hosts,
                 "%.2f" % r.median("virsh"), "%.2f" % r.fastest("virsh"), "", "", "", "", "", r.listed("virsh", "%.2f")]]
        for key, what in (("empty-ours", "`ansible-inventory --list` of an empty inventory, virtops venv"),
                          ("empty-theirs", "the same, ansible %s venv" % self.ansible_version)):
            rows.append(["(0)", what, "%.2f" % r.median(key), "%.2f" % r.fastest(key), "", "%.2f" % c.median(key),
                         "", "", "", r.listed(key, "%.2f")])
        variants = [("ours", "1", "virtops.libvirt.libvirt, 1 source with %d URIs (8 workers, ip_source lease)"
                     % self.hosts),
                    ("serial", "2", "(1) with `workers: 1`"),
                    ("noaddr", "3", "(1) with `ip_source: none`"),
                    ("theirs", "4", "community.libvirt.libvirt %s, %d sources (one per URI)"
                     % (self.community.cl_version, self.hosts))]
        if self.slow_uris:
            variants += [("slow-ours", "5", "(1), %d ms round trip" % self.rtt),
                         ("slow-serial", "6", "(2), %d ms round trip" % self.rtt),
                         ("slow-theirs", "7", "(4), %d ms round trip" % self.rtt)]
        variants.append(("few", "8", "(1) with `variables: %s`" % FEW))
        for key, label, what in variants:
            base = "empty-theirs" if key.endswith("theirs") else "empty-ours"
            rows.append(["(%s)" % label, what, "%.2f" % r.median(key), "%.2f" % r.fastest(key),
                         "%.2f" % (r.fastest(key) - r.fastest(base)), "%.2f" % c.median(key),
                         "%.2f" % (c.median(key) - c.median(base)), "%.2fx" % r.ratio(key, "ours"),
                         "%d" % (self.sizes[key] // 1024), r.listed(key, "%.2f")])
        report.section(table(["variant", "what", "median s", "fastest s", "fastest minus start-up", "CPU s",
                              "CPU minus start-up", "ratio to (1)", "output KiB", "all runs (s)"],
                             rows, right=(2, 3, 4, 5, 6, 7, 8)))
        notes = ["- community.libvirt / virtops.libvirt: %s (medians), %s (fastest runs), CPU %s; without Ansible's "
                 "start-up: %s, %s, CPU %s" % self.compare("ours", "theirs")]
        if self.slow_uris:
            notes.append("- with a %d ms round trip: %s (medians), %s (fastest runs), CPU %s; without Ansible's "
                         "start-up: %s, %s, CPU %s" % ((self.rtt,) + self.compare("slow-ours", "slow-theirs")))
            notes.append("- `virsh version` took %.3f s through the relay and %.3f s directly"
                         % (self.relay_check, self.direct_check))
        notes.append("- wall-clock seconds of the whole `ansible-inventory --list` run; CPU: user + system of that "
                     "process (libvirtd's work is in the lab's daemons, in neither)")
        report.section("\n".join(notes))
        report.data = dict(vms=self.vms, hosts=self.hosts, rtt_ms=self.rtt, runs=r.values, cpu=c.values,
                           sizes=self.sizes)
        return report

    def compare(self, ours, theirs):
        r, c = self.runs, self.cpu

        def x(a, b):
            return "%.2fx" % (a / b) if b > 0 else "-"
        return (x(r.median(theirs), r.median(ours)), x(r.fastest(theirs), r.fastest(ours)),
                x(c.median(theirs), c.median(ours)),
                x(r.median(theirs) - r.median("empty-theirs"), r.median(ours) - r.median("empty-ours")),
                x(r.fastest(theirs) - r.fastest("empty-theirs"), r.fastest(ours) - r.fastest("empty-ours")),
                x(c.median(theirs) - c.median("empty-theirs"), c.median(ours) - c.median("empty-ours")))


if __name__ == "__main__":
    sys.exit(_session.main([Scenario.name]))
