# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Plumbing every scenario uses: knobs from the environment, logging, commands, virsh, machine facts."""

import datetime
import json
import os
import re
import shlex
import shutil
import string
import subprocess
import sys
import time
from xml.sax.saxutils import escape

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "benchmarks")
PLAYBOOKS = os.path.join(BENCH_DIR, "playbooks")
HELPERS = os.path.join(BENCH_DIR, "helpers")
RESULTS = os.path.join(BENCH_DIR, "results")


class BenchError(Exception):
    """The benchmark cannot go on (bad knob, failed command, a check that failed): the message says why."""


def log(msg):
    print("[bench] %s" % msg, file=sys.stderr, flush=True)


def now():
    """Seconds on a monotonic clock, for intervals."""
    return time.perf_counter()


def utc(fmt="%Y-%m-%d %H:%M UTC"):
    return datetime.datetime.now(datetime.timezone.utc).strftime(fmt)


class Knobs:
    """The BENCH_* settings a scenario reads, validated at once and remembered for the report."""

    def __init__(self):
        self.used = {}

    def _raw(self, name, default):
        value = os.environ.get(name, "")
        return str(default) if value == "" else value

    def int(self, name, default, minimum=1, maximum=None):
        raw = self._raw(name, default)
        if not re.match(r"^[0-9]+$", raw) or int(raw) < minimum or (maximum is not None and int(raw) > maximum):
            limit = "%d..%s" % (minimum, maximum if maximum is not None else "")
            raise BenchError("%s must be a whole number in %s: %r" % (name, limit, raw))
        self.used[name] = raw
        return int(raw)

    def choice(self, name, default, choices):
        raw = self._raw(name, default)
        if raw not in choices:
            raise BenchError("%s must be one of %s: %r" % (name, ", ".join(choices), raw))
        self.used[name] = raw
        return raw

    def subset(self, name, default, choices):
        """A comma-separated subset of choices, in the order of choices."""
        raw = self._raw(name, default)
        got = [p.strip() for p in raw.split(",") if p.strip()]
        bad = [p for p in got if p not in choices]
        if bad or not got:
            raise BenchError("%s must be a comma-separated list of %s: %r" % (name, ", ".join(choices), raw))
        self.used[name] = raw
        return [c for c in choices if c in got]

    def name(self, name, default):
        raw = self._raw(name, default)
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", raw):
            raise BenchError("%s must be a plain name: %r" % (name, raw))
        self.used[name] = raw
        return raw

    def path(self, name, default):
        raw = self._raw(name, default).rstrip("/")
        if not re.match(r"^/[A-Za-z0-9._/-]+$", raw) or raw in ("/var/tmp", "/tmp", "/var", "/root"):
            raise BenchError("%s must be an absolute path of [A-Za-z0-9._/-] below a directory of its own: %r"
                             % (name, raw))
        self.used[name] = raw
        return raw

    def command(self, scenario):
        """The command line that repeats this run."""
        env = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in sorted(self.used.items()))
        return ("%s python -m benchmarks %s" % (env, scenario)).strip()


def need_tools(*names):
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise BenchError("not installed: %s" % ", ".join(missing))


def run(argv, check=True, env=None, cwd=None, stdin=None, stdout=None, timeout=None):
    """Run argv (a list, never a shell); its stdout as text, unless stdout is given (a file or DEVNULL).
    On failure: BenchError with the command, its exit code and the end of its output."""
    proc = subprocess.run(argv, env=env, cwd=cwd, stdin=stdin, timeout=timeout, check=False,
                          stdout=subprocess.PIPE if stdout is None else stdout,
                          stderr=subprocess.PIPE, universal_newlines=True)
    if check and proc.returncode != 0:
        out = "\n".join(((proc.stdout or "") + (proc.stderr or "")).strip().splitlines()[-20:])
        raise BenchError("%s: exit %d\n%s" % (" ".join(shlex.quote(a) for a in argv), proc.returncode, out))
    return proc.stdout if stdout is None else proc


def run_logged(argv, logfile, env=None, cwd=None):
    """Run argv with stdout and stderr into logfile; BenchError with the log's end on failure."""
    with open(logfile, "w") as out:
        proc = subprocess.run(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise BenchError("%s failed (exit %d, log %s):\n%s" % (
            os.path.basename(argv[0]), proc.returncode, logfile, tail(logfile)))


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def virsh(uri, *args, check=True):
    """virsh -q -c URI ARGS...: its stdout (text); with check=False, None when it failed."""
    proc = subprocess.run(["virsh", "-q", "-c", uri] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, check=False)
    if proc.returncode != 0:
        if check:
            raise BenchError("virsh -c %s %s: %s" % (uri, " ".join(args), proc.stderr.strip()))
        return None
    return proc.stdout


def virsh_lines(uri, *args):
    return [line.strip() for line in virsh(uri, *args).splitlines() if line.strip()]


def qemu_img_info(path):
    return json.loads(run(["qemu-img", "info", "-U", "--output=json", path]))


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def xml_escape(value):
    return escape(str(value), {"'": "&apos;", '"': "&quot;"})


def render_xml(template, **values):
    """benchmarks/templates/TEMPLATE with its $placeholders filled with the values, XML-escaped."""
    with open(os.path.join(BENCH_DIR, "templates", template)) as f:
        return string.Template(f.read()).substitute(dict((k, xml_escape(v)) for k, v in values.items()))


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine():
    """One line: cores, CPU model, RAM, kernel."""
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        kib = int(re.search(r"^MemTotal:\s+(\d+)", f.read(), re.M).group(1))
    return "%d cores (%s), %.1f GiB RAM, kernel %s" % (os.cpu_count(), model, kib / 1048576.0, os.uname().release)


def hypervisor_versions(uri):
    """'libvirt X, running hypervisor QEMU Y; qemu-img version Z'."""
    lib = hyp = "?"
    for line in virsh(uri, "version").splitlines():
        key, _sep, value = line.partition(":")
        if key.strip() == "Using library":
            lib = value.strip()
        elif "Running hypervisor" in key:
            hyp = value.strip()
    return "libvirt %s, running hypervisor %s; %s" % (
        lib.replace("libvirt ", ""), hyp, run(["qemu-img", "--version"]).splitlines()[0])


def git_rev():
    """The commit the work tree is at, and whether plugins/ has changes that are not committed."""
    proc = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, universal_newlines=True, check=False)
    rev = proc.stdout.strip() or "unknown"
    proc = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "plugins"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, universal_newlines=True, check=False)
    if proc.stdout.strip():
        rev += " (plugins/ has uncommitted changes)"
    return rev


def need_root():
    if os.geteuid() != 0:
        raise BenchError("must run as root (the lab needs it)")
