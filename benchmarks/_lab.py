# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmarks' own lab (tests/lab/lab.sh): used when it is up, else brought up and taken down again."""

import os
import re
import shlex
import subprocess

from ._util import ROOT, BenchError, log, run

LAB_SH = os.path.join(ROOT, "tests", "lab", "lab.sh")
DEFAULT_PREFIX = "vbench"
DEFAULT_STATE_DIR = "/var/tmp/virtops-bench"
# the lab the tests and the demo use: never the benchmarks'
SHARED_PREFIX = "virtops-lab"
SHARED_STATE_DIR = "/var/tmp/virtops-lab"


class Lab:
    """A context manager for a lab of at least `hosts` hypervisors.

    LAB_NS_PREFIX and LAB_STATE_DIR (default vbench, /var/tmp/virtops-bench) name it; the default lab of
    the tests is refused. A lab that is up with enough hosts is used and left up. Otherwise it is brought
    up, and taken down at the end: with --purge when its state dir did not exist before.
    """

    def __init__(self, hosts):
        self.hosts = hosts
        self.prefix = os.environ.get("LAB_NS_PREFIX") or DEFAULT_PREFIX
        self.state_dir = (os.environ.get("LAB_STATE_DIR") or DEFAULT_STATE_DIR).rstrip("/")
        if self.prefix == SHARED_PREFIX or self.state_dir == SHARED_STATE_DIR:
            raise BenchError("refusing to run against the default lab (LAB_NS_PREFIX=%s or LAB_STATE_DIR=%s)"
                             % (SHARED_PREFIX, SHARED_STATE_DIR))
        self.env = dict(os.environ, LAB_NS_PREFIX=self.prefix, LAB_STATE_DIR=self.state_dir)
        self.started = False
        self.state_existed = False
        self.vars = {}

    def describe(self):
        return "LAB_NS_PREFIX=%s LAB_STATE_DIR=%s" % (self.prefix, self.state_dir)

    def _lab(self, *args, check=True, quiet=True):
        proc = subprocess.run([LAB_SH] + list(args), env=self.env, universal_newlines=True, check=False,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE if quiet else None)
        if check and proc.returncode != 0:
            raise BenchError("lab.sh %s failed (exit %d): %s" % (" ".join(args), proc.returncode,
                                                                 (proc.stderr or "").strip()))
        return proc

    def _libvirtd_alive(self):
        """A libvirtd of this state dir runs (whatever prefix it was started with)."""
        if not os.path.isdir(self.state_dir):
            return False
        for name in os.listdir(self.state_dir):
            pidfile = os.path.join(self.state_dir, name, "pids", "libvirtd.pid")
            if not re.match(r"^host[0-9]+$", name) or not os.path.exists(pidfile):
                continue
            with open(pidfile) as f:
                pid = f.read().strip()
            try:
                with open("/proc/%s/comm" % pid) as f:
                    if pid.isdigit() and f.read().strip() == "libvirtd":
                        return True
            except OSError:
                continue
        return False

    def __enter__(self):
        self.state_existed = os.path.isdir(self.state_dir)
        up = self.state_existed and self._lab("status", check=False).returncode == 0
        if up:
            have = len(self._lab("uris").stdout.split())
            if have < self.hosts:
                raise BenchError("lab %s is up with %d hosts, this needs %d: take it down or set another "
                                 "LAB_STATE_DIR" % (self.describe(), have, self.hosts))
            log("lab %s is already up: using it and leaving it up" % self.describe())
        else:
            if self._libvirtd_alive():
                raise BenchError("a libvirtd of %s runs, but lab %s is not up (another prefix, or a host is "
                                 "down?); set LAB_STATE_DIR and LAB_NS_PREFIX" % (self.state_dir, self.prefix))
            log("lab up %d: %s" % (self.hosts, self.describe()))
            self.started = True
            try:
                self._lab("up", str(self.hosts), quiet=False)
            except BaseException:
                self.__exit__(None, None, None)
                raise
        for line in self._lab("env").stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                self.vars[key] = (shlex.split(value) or [""])[0]
        return self

    def __exit__(self, *exc):
        if self.started:
            self.started = False
            log("lab down: %s" % self.describe())
            args = ["down"] if self.state_existed else ["down", "--purge"]
            proc = self._lab(*args, check=False, quiet=False)
            if proc.returncode != 0:
                log("warning: lab.sh %s failed (exit %d)" % (" ".join(args), proc.returncode))
        return False

    def uri(self, i=1):
        return self.vars["LAB_URI_%d" % i]

    def addr(self, i=1):
        return self.vars["LAB_ADDR_%d" % i]

    def ns(self, i=1):
        """The network namespace of host i."""
        return self.vars["LAB_NS_%d" % i]

    def tcp_uri(self, i=1):
        return self.vars["LAB_TCP_URI_%d" % i]

    def uris(self, n):
        return [self.uri(i) for i in range(1, n + 1)]

    def inventory(self, path, hosts=None):
        """An Ansible inventory of lab1..labN (connection local), written to path."""
        run([LAB_SH, "inventory", path] + ([str(hosts)] if hosts else []), env=self.env)
        return path
