# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Running Ansible for a benchmark: playbooks (files under benchmarks/playbooks), timed, and checks of their logs."""

import base64
import json
import os
import re
import subprocess

from ._util import BENCH_DIR, PLAYBOOKS, BenchError, now, tail

ANSIBLE_CFG = os.path.join(BENCH_DIR, "ansible.cfg")


def ansible_env(collections=None, extra=None):
    """The environment of an Ansible command: none of the caller's ANSIBLE_* settings, Ansible's defaults
    but for benchmarks/ansible.cfg and no colour; ANSIBLE_COLLECTIONS_PATH only for our collection
    (the `ansible` package's venv finds community.libvirt in its site-packages)."""
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith("ANSIBLE_"))
    env.update(ANSIBLE_CONFIG=ANSIBLE_CFG, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    if collections:
        env["ANSIBLE_COLLECTIONS_PATH"] = collections
    env.update(extra or {})
    return env


class PlaybookRun:
    """The log and the wall time of one ansible-playbook run."""

    def __init__(self, label, log_path, seconds):
        self.label = label
        self.log = log_path
        self.seconds = seconds
        with open(log_path, errors="replace") as f:
            self.text = f.read()

    def items(self, task):
        """{status: count} of the loop items of TASK [task]."""
        counts = {}
        on = False
        for line in self.text.splitlines():
            if line.startswith("TASK ["):
                on = line.startswith("TASK [%s]" % task)
                continue
            m = re.match(r"^(ok|changed|failed|fatal|skipping): \[[^]]+\] => \(item=", line)
            if on and m:
                counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        return counts

    def check_items(self, task, status, count):
        """TASK [task] has `count` loop items, every one with `status` (ok or changed)."""
        got = self.items(task)
        if got != {status: count}:
            raise BenchError("%s: task %r: expected %d items %r, got %s (log: %s)"
                             % (self.label, task, count, status, got or "none", self.log))

    def marks(self, count):
        """The numbers of the last BENCH_MARKS line (a debug task prints it)."""
        found = re.findall(r'"BENCH_MARKS ([^"]*)"', self.text)
        values = found[-1].split() if found else []
        if len(values) != count:
            raise BenchError("%s: expected %d BENCH_MARKS values, got %r (log: %s)" % (self.label, count, values, self.log))
        return values


def playbook(label, venv, name, inventory, logdir, extra_vars=None, collections=None, env=None,
             prefix=()):
    """Run benchmarks/playbooks/NAME with the venv's ansible-playbook against the inventory, timed around the
    whole process; extra_vars as one JSON -e; prefix before the command (`ip netns exec NS`, for example).
    BenchError with the log's end when it fails."""
    path = os.path.join(PLAYBOOKS, name)
    log_path = os.path.join(logdir, "%s.log" % label)
    argv = list(prefix) + [os.path.join(venv, "bin", "ansible-playbook"), "-i", inventory, path]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    with open(log_path, "w") as out:
        t0 = now()
        proc = subprocess.run(argv, env=ansible_env(collections, env), cwd=logdir, stdout=out,
                              stderr=subprocess.STDOUT, check=False)
        seconds = now() - t0
    if proc.returncode != 0:
        raise BenchError("%s: ansible-playbook %s failed (exit %d, log %s):\n%s"
                         % (label, name, proc.returncode, log_path, tail(log_path)))
    return PlaybookRun(label, log_path, seconds)


def marker_interval(a, b, c):
    """Seconds of the task(s) between markers a and b, less one marker's own cost (c - b, two markers back to
    back). Markers are set_fact tasks of now().timestamp(): no module process, a few ms each."""
    return (float(b) - float(a)) - (float(c) - float(b))


def check_apply(run, labels, changed):
    """The result of the virtops.libvirt.apply task of `run` (a PlaybookRun of playbooks/virtops/apply.yml, which
    prints it as base64 of its JSON): one item per expected label, in that order, none failed or skipped, each
    `changed` as expected. BenchError otherwise; the parsed result."""
    found = re.findall(r'"BENCH_APPLY ([A-Za-z0-9+/=]*)"', run.text)
    try:
        result = json.loads(base64.b64decode(found[-1]).decode("utf-8"))
    except (IndexError, ValueError) as exc:
        raise BenchError("%s: no apply result in the log %s: %s" % (run.label, run.log, exc))
    items = result.get("results") or []
    got = [r.get("label") for r in items]
    if got != list(labels):
        raise BenchError("%s: apply returned the items %s..., expected %s... (log %s)"
                         % (run.label, got[:2], list(labels)[:2], run.log))
    bad = ["%s: changed=%s failed=%s%s" % (r["label"], r.get("changed"), r.get("failed"),
                                           " skipped" if r.get("skipped") else "")
           for r in items if r.get("failed") or r.get("skipped") or r.get("changed") is not changed]
    if bad or result.get("failed") or result.get("changed") is not changed:
        raise BenchError("%s: expected every item changed=%s: %s (log %s)"
                         % (run.label, changed, "; ".join(bad[:5]), run.log))
    return result
