# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""guest_agent: Ansible inside a guest through its QEMU guest agent: virtops.libvirt.guest_agent against
community.libvirt's libvirt_qemu connection, on the same guest, in one run.

The guest: the lab's Debian image (tests/lab/guest-image.sh), a qcow2 overlay of it in a dir pool of the
scenario's own, direct kernel boot, TCG, 512 MiB, 1 vCPU, q35, no NIC, the org.qemu.guest_agent.0 channel; the
scenario waits for its agent (virsh qemu-agent-command guest-ping). Every variant is one ansible-playbook run of
playbooks/virtops/guest_agent.yml against an inventory whose one host is the VM, with the variant's connection:
BENCH_TASK_N (20) items of `command: true`, then `copy` of a BENCH_FILE_MIB (10) MiB random file (made once; the
guest's copy removed before), timed between set_fact markers; whole runs timed too. Variants:
  ours          virtops.libvirt.guest_agent with its defaults (pipelining on, 128 KiB put chunks, code cache on)
  ours-nocache  the same with code_cache off (the guest's Python compiles module_utils for every task)
  ours-nopipe   the same with pipelining off (modules sent as files, like libvirt_qemu does)
  ours-64k      put_chunk_size 64 KiB (what libvirt_qemu writes per request)
  ours-160k     put_chunk_size 160 KiB, the most (QEMU 7.2's agent loses requests above ~220 KB)
  community     community.libvirt.libvirt_qemu (its venv: BENCH_ANSIBLE_VERSION)
Repetitions interleaved; medians; ratios to `community` of the same run. Checked after every run: 20 items ok,
the guest's sha1 and size of the copy equal the source's. python -m benchmarks guest_agent (benchmarks/README.md).
"""

import base64
import hashlib
import json
import os
import re
import sys
import time

from . import _ansible, _session
from ._report import Report, Runs, median, table
from ._util import BENCH_DIR, ROOT, BenchError, loadavg, log, need_tools, now, run, virsh, write, xml_escape
from ._virt import DirPool, domains, remove_domains

VM = "vbench-ga"
DEST = "/var/tmp/bench-copy.bin"
TEMPLATE = os.path.join(BENCH_DIR, "templates", "guest_agent_domain.xml")
OURS = "virtops.libvirt.guest_agent"
THEIRS = "community.libvirt.libvirt_qemu"

# key, what, connection, extra host variables
VARIANTS = (
    ("ours", "virtops.libvirt.guest_agent, defaults (pipelining on, 128 KiB put chunks, code cache on)", OURS, {}),
    ("ours-nocache", "virtops.libvirt.guest_agent, `code_cache: false`", OURS, {"ansible_libvirt_code_cache": False}),
    ("ours-nopipe", "virtops.libvirt.guest_agent, pipelining off", OURS, {"ansible_pipelining": False}),
    ("ours-64k", "virtops.libvirt.guest_agent, `put_chunk_size` 64 KiB (libvirt_qemu's chunk)", OURS,
     {"ansible_libvirt_put_chunk_size": 65536}),
    ("ours-160k", "virtops.libvirt.guest_agent, `put_chunk_size` 160 KiB (the most)", OURS,
     {"ansible_libvirt_put_chunk_size": 163840}),
    # qemu-ga runs without HOME: libvirt_qemu then writes files under a literal "~" while the modules look in
    # /root (its copy fails with "Source ... not found"): an absolute remote_tmp makes it work
    ("community", "community.libvirt.libvirt_qemu, `ansible_remote_tmp: /root/.ansible/tmp`", THEIRS,
     {"ansible_remote_tmp": "/root/.ansible/tmp"}),
)


def inventory(host_vars):
    """A YAML (JSON) inventory of the one host `guest`.

    >>> print(inventory({"ansible_connection": "local"}))
    {"all": {"hosts": {"guest": {"ansible_connection": "local"}}}}
    """
    return json.dumps({"all": {"hosts": {"guest": host_vars}}}, sort_keys=True)


class Scenario(_session.Scenario):
    name = "guest_agent"
    title = "guest agent connections: 20 commands and a 10 MiB copy, virtops.libvirt.guest_agent vs libvirt_qemu"
    files = ("playbooks/virtops/guest_agent.yml", "templates/guest_agent_domain.xml")

    def read_knobs(self):
        self.task_n = self.knobs.int("BENCH_TASK_N", 20)
        self.file_mib = self.knobs.int("BENCH_FILE_MIB", 10, maximum=512)
        self.reps = self.knobs.int("BENCH_REPS", 3)
        keys = tuple(v[0] for v in VARIANTS)
        self.keys = self.knobs.subset("BENCH_VARIANTS", ",".join(keys), keys)
        if "community" not in self.keys or "ours" not in self.keys:
            raise BenchError("BENCH_VARIANTS must hold ours and community (the ratios)")
        self.version = self.knobs.name("BENCH_ANSIBLE_VERSION", "12.3.0")
        self.pool_name = self.knobs.name("BENCH_POOL", "vbench-ga")
        self.pool_dir = self.knobs.path("BENCH_POOL_DIR", "/var/tmp/virtops-bench-ga-pool")
        self.boot_timeout = self.knobs.int("BENCH_BOOT_TIMEOUT", 900)

    def preflight(self):
        need_tools("make", "virsh", "qemu-img")

    def run(self, session, stack):
        build = session.build
        build.require("plugins/connection/guest_agent.py")
        self.community = session.community(self.version)
        self.community.require("plugins/connection/libvirt_qemu.py")
        self.uri = session.lab.uri(1)
        self.logs = session.scratch(self.name)
        image = run([os.path.join(ROOT, "tests", "lab", "guest-image.sh"), "build"]).strip().splitlines()[-1]
        with open(os.path.join(image, "manifest.json")) as f:
            cmdline = json.load(f)["cmdline"]
        if domains(self.uri, lambda d: d == VM):
            raise BenchError("domain %s already exists on %s" % (VM, self.uri))
        pool = DirPool(self.uri, self.pool_name, self.pool_dir, (VM + ".qcow2", VM + "-serial.log")).create(stack)
        stack.callback(lambda: remove_domains(self.uri, domains(self.uri, lambda d: d == VM)))
        disk = pool.file(VM + ".qcow2")
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", os.path.join(image, "root.qcow2"), "-F", "qcow2", disk])
        with open(TEMPLATE) as f:
            text = f.read()
        for key, value in (("vm_name", VM), ("vm_disk", disk), ("vm_kernel", os.path.join(image, "vmlinuz")),
                           ("vm_initrd", os.path.join(image, "initrd.img")), ("vm_cmdline", cmdline),
                           ("vm_serial", pool.file(VM + "-serial.log"))):
            text = text.replace("{{ %s }}" % key, xml_escape(value))
        virsh(self.uri, "define", write(os.path.join(self.logs, VM + ".xml"), text))
        virsh(self.uri, "start", VM)
        self.wait_for_agent()
        self.source = os.path.join(self.logs, "bench-%dm.bin" % self.file_mib)
        with open(self.source, "wb") as f:
            f.write(os.urandom(self.file_mib * 1024 * 1024))
        with open(self.source, "rb") as f:
            self.sha1 = hashlib.sha1(f.read()).hexdigest()
        self.runs = Runs()
        self.loads = []
        variants = [v for v in VARIANTS if v[0] in self.keys]
        for rep in range(1, self.reps + 1):
            log("repetition %d/%d" % (rep, self.reps))
            for variant in variants:
                self.measure(rep, variant, build)
        return self.report(variants)

    def wait_for_agent(self):
        """Until the agent answers, then until the boot is over (systemd and cloud-init, in the guest)."""
        started = now()
        while virsh(self.uri, "qemu-agent-command", VM, '{"execute":"guest-ping"}', check=False) is None:
            if now() - started > self.boot_timeout:
                raise BenchError("the guest agent of %s did not answer within %d s" % (VM, self.boot_timeout))
            time.sleep(5)
        log("%s: guest agent answers after %.0f s" % (VM, now() - started))
        request = {"execute": "guest-exec", "arguments": {"path": "/bin/sh", "capture-output": True, "arg": [
            "-c", "systemctl is-system-running --wait; cloud-init status --wait >/dev/null; uptime"]}}
        pid = json.loads(virsh(self.uri, "qemu-agent-command", VM, json.dumps(request)))["return"]["pid"]
        status = {"execute": "guest-exec-status", "arguments": {"pid": pid}}
        while True:
            answer = virsh(self.uri, "qemu-agent-command", VM, "--timeout", "30", json.dumps(status), check=False)
            done = json.loads(answer)["return"] if answer else {}
            if done.get("exited"):
                break
            if now() - started > self.boot_timeout:
                raise BenchError("%s did not finish booting within %d s" % (VM, self.boot_timeout))
            time.sleep(2)
        log("%s: booted after %.0f s: %s" % (VM, now() - started, " ".join(
            base64.b64decode(done.get("out-data", "")).decode("utf-8", "replace").split())))

    def measure(self, rep, variant, build):
        key, _what, connection, extra = variant
        label = "%s-%d" % (key, rep)
        host = dict(ansible_connection=connection, ansible_libvirt_uri=self.uri, ansible_host=VM,
                    ansible_libvirt_vm=VM, ansible_python_interpreter="/usr/bin/python3")
        host.update(extra)
        inv = write(os.path.join(self.logs, "%s.json" % key), inventory(host))
        ours = connection == OURS
        venv = build.venv if ours else self.community.venv
        self.loads.append(float(loadavg().split()[0]))
        log("%s: %d commands and a %d MiB copy" % (label, self.task_n, self.file_mib))
        result = _ansible.playbook(label, venv, "virtops/guest_agent.yml", inv, self.logs,
                                   collections=build.installed if ours else None,
                                   extra_vars=dict(bench_n=self.task_n, bench_file=self.source, bench_dest=DEST))
        result.check_items("Timed command", "ok", self.task_n)
        copy = re.findall(r'"BENCH_COPY (\S+) (\S+)"', result.text)
        if not copy or copy[-1] != (self.sha1, str(self.file_mib * 1024 * 1024)):
            raise BenchError("%s: the guest's copy is %s, expected sha1 %s, %d bytes (log %s)"
                             % (label, copy[-1] if copy else "missing", self.sha1, self.file_mib << 20, result.log))
        t0, t1, t2, t3 = (float(v) for v in result.marks(4))
        marker = t3 - t2
        self.runs.add(key + "-cmd", 1000 * (t1 - t0 - marker) / self.task_n)
        self.runs.add(key + "-copy", t2 - t1 - marker)
        self.runs.add(key + "-run", result.seconds)

    def report(self, variants):
        report = Report(self.name, self.title)
        report.fact("guest %s: the lab's Debian image (overlay), TCG, 512 MiB, 1 vCPU, q35, direct kernel boot, no "
                    "NIC, qemu-guest-agent; pool dir %s" % (VM, self.pool_dir))
        report.fact("repetitions: %d, interleaved (median shown); %d command items; copy of %d MiB of random data "
                    "to %s (removed before each run); ratios to `community` of the same run"
                    % (self.reps, self.task_n, self.file_mib, DEST))
        report.fact("1-minute load average before the runs: %.1f to %.1f (median %.1f)"
                    % (min(self.loads), max(self.loads), median(self.loads)))
        r = self.runs
        mib = float(self.file_mib)
        rows = []
        for key, what, _connection, _extra in variants:
            rows.append([
                key, what,
                "%.0f (%.0f)" % (r.median(key + "-cmd"), r.fastest(key + "-cmd")),
                "%.2fx" % r.ratio(key + "-cmd", "community-cmd"),
                "%.2f (%.2f)" % (r.median(key + "-copy"), r.fastest(key + "-copy")),
                "%.1f" % (mib * 1.048576 / r.median(key + "-copy")),
                "%.2fx" % r.ratio(key + "-copy", "community-copy"),
                "%.1f" % r.median(key + "-run"), "%.2fx" % r.ratio(key + "-run", "community-run"),
                "%s / %s / %s" % (r.listed(key + "-cmd", "%.0f"), r.listed(key + "-copy", "%.2f"),
                                  r.listed(key + "-run", "%.1f"))])
        report.section(table(
            ["variant", "connection", "command ms/item (fastest)", "command ratio", "copy s (fastest)", "copy MB/s",
             "copy ratio", "whole run s", "run ratio", "all runs: command / copy / run"],
            rows, right=(2, 3, 4, 5, 6, 7, 8)))
        report.data = dict(task_n=self.task_n, file_mib=self.file_mib, reps=self.reps, runs=r.values,
                           loads=self.loads, variants=[v[0] for v in variants])
        return report


if __name__ == "__main__":
    sys.exit(_session.main([Scenario.name]))
