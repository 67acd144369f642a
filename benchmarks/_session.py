# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the scenarios of one run share (a work dir, the collection built once, the venvs, the lab), the base
class of a scenario, and the runner: python -m benchmarks [SCENARIO...]."""

import argparse
import contextlib
import doctest
import importlib
import os
import shutil
import signal
import sys
import tempfile

from . import _report
from ._lab import Lab
from ._tools import Build, Community
from ._util import (BENCH_DIR, RESULTS, BenchError, Knobs, git_rev, hypervisor_versions, loadavg, log, machine, need_root,
                    need_tools, now, utc)

SCENARIOS = ("volume_clones", "vm_overhead", "inventory", "migrate", "export", "settings", "vm_stats", "guest_agent", "backup")


class Scenario:
    """One benchmark. A subclass reads and checks its knobs in knobs_read() (before anything is built or
    started), names the files it uses (relative to benchmarks/) in `files`, and measures in run()."""

    name = ""
    title = ""
    files = ()
    hosts = 1

    def __init__(self):
        self.knobs = Knobs()
        self.read_knobs()

    def read_knobs(self):
        """Read the BENCH_* knobs through self.knobs (BenchError when one is wrong)."""

    def preflight(self):
        """Checks before anything is built or started (tools it needs, for example)."""
        need_tools("make", "virsh", "qemu-img")

    def run(self, session, stack):
        """Measure and check; return a _report.Report. Register cleanups on stack (an ExitStack that unwinds
        when the scenario ends, also on error or Ctrl-C)."""
        raise NotImplementedError


class Session:
    """The work dir (/var/tmp/virtops-bench-work.XXXXXX, removed at the end), the collection built into it,
    the lab (of as many hosts as the scenarios of the run need) and its inventory."""

    def __init__(self, stack, hosts):
        self.work = tempfile.mkdtemp(prefix="virtops-bench-work.", dir="/var/tmp")
        stack.callback(shutil.rmtree, self.work, True)
        self.build = Build(self.work)
        self.lab = stack.enter_context(Lab(hosts))
        self.inventory = self.lab.inventory(os.path.join(self.work, "inventory.yml"))
        self.rev = git_rev()
        self._community = {}
        self._scratch = {}

    def community(self, version):
        """The venv of the `ansible` package of that version (created once, cached)."""
        if version not in self._community:
            self._community[version] = Community(version)
        return self._community[version]

    def scratch(self, name):
        """A fresh directory of the work dir (logs, generated files) for one scenario."""
        path = os.path.join(self.work, name)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        self._scratch[name] = path
        return path

    def keep_logs(self, name):
        """After a failure: the logs of scenario `name` into benchmarks/results/<name>-<stamp>-failed/."""
        path = self._scratch.get(name)
        logs = sorted(f for f in os.listdir(path) if f.endswith(".log")) if path else []
        if logs:
            dest = os.path.join(RESULTS, "%s-%s-failed" % (name, utc("%Y%m%d-%H%M%S")))
            os.makedirs(dest, exist_ok=True)
            for f in logs:
                shutil.copy(os.path.join(path, f), dest)
            log("logs of the failed run: %s" % dest)

    def finish(self, report, scenario, started, load_start, community=None):
        """The facts every report has, first."""
        facts = [
            "date: %s; runtime %.0f s" % (utc(), now() - started),
            "machine: %s" % machine(),
            "load average at start: %s; at end: %s" % (load_start, loadavg()),
            hypervisor_versions(self.lab.uri(1)),
            "virtops.libvirt at %s, ansible-core %s" % (self.rev, self.build.core_version)
            + ("; %s" % community.describe() if community else ""),
            "lab: %s" % self.lab.describe(),
            "command: `%s`" % scenario.knobs.command(scenario.name),
        ]
        report.facts[:0] = facts


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def check():
    """Cheap self-check for `make lint`: every scenario imports and reads its default knobs, its files exist,
    the statistics' doctests pass."""
    failures, tests = doctest.testmod(_report)
    for name in SCENARIOS:
        module = importlib.import_module("benchmarks." + name)
        more_failures, more_tests = doctest.testmod(module)
        failures, tests = failures + more_failures, tests + more_tests
        scenario = module.Scenario()
        for path in scenario.files:
            if not os.path.exists(os.path.join(BENCH_DIR, path)):
                print("%s: missing benchmarks/%s" % (name, path), file=sys.stderr)
                failures += 1
    print("benchmarks: %d scenarios and %d doctests checked, %d problems" % (len(SCENARIOS), tests, failures))
    return 1 if failures else 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=(
        "Run benchmarks (all by default; see benchmarks/README.md). Results: benchmarks/results/."))
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    parser.add_argument("--check", action="store_true", help="check the package (no lab, nothing run)")
    args = parser.parse_args(argv)
    if args.check:
        return check()
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error("unknown scenario %s (known: %s)" % (", ".join(unknown), ", ".join(SCENARIOS)))
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        scenarios = [importlib.import_module("benchmarks." + n).Scenario() for n in args.scenarios or SCENARIOS]
        need_root()
        for scenario in scenarios:
            scenario.preflight()
        with contextlib.ExitStack() as stack:
            session = Session(stack, max(s.hosts for s in scenarios))
            for scenario in scenarios:
                log("=== %s: %s" % (scenario.name, scenario.title))
                started, load_start = now(), loadavg()
                try:
                    with contextlib.ExitStack() as own:
                        report = scenario.run(session, own)
                except BenchError:
                    session.keep_logs(scenario.name)
                    raise
                session.finish(report, scenario, started, load_start, getattr(scenario, "community", None))
                report.write()
    except BenchError as exc:
        log("error: %s" % exc)
        return 1
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        return 130
    return 0
