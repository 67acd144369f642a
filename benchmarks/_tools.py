# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection built for this run, the tools venv, and the venv of the `ansible` package (community.libvirt)."""

import json
import os
import shutil

from ._util import ROOT, BenchError, log, run, run_logged


def cache_dir():
    return os.environ.get("VIRTOPS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "virtops-libvirt")


def python_value(python, code, *args):
    return run([python, "-c", code] + list(args)).strip()


CORE_VERSION = "import ansible.release as r; print(r.__version__)"


class Build:
    """`make install` of the work tree into this run's own BUILD_DIR and STAGE.

    Not .build/installed: a `make install` of other work (tests) replaces that directory and the shared
    stage while it runs, which once broke a playbook in the middle of a benchmark. The venv is the
    Makefile's (tests/tools/bootstrap.sh). It is the work tree as it is, uncommitted changes included.
    """

    def __init__(self, work):
        build, stage = os.path.join(work, "build"), os.path.join(work, "stage")
        log("make install BUILD_DIR=%s STAGE=%s" % (build, stage))
        run_logged(["make", "-s", "-C", ROOT, "install", "BUILD_DIR=" + build, "STAGE=" + stage],
                   os.path.join(work, "make-install.log"))
        with open(os.path.join(build, "venv")) as f:
            self.venv = f.read().strip()
        self.python = os.path.join(self.venv, "bin", "python")
        self.installed = os.path.join(build, "installed")
        self.collection = os.path.join(self.installed, "ansible_collections", "virtops", "libvirt")
        if not os.path.isfile(os.path.join(self.collection, "MANIFEST.json")):
            raise BenchError("no collection in %s" % self.installed)
        self.core_version = python_value(self.python, CORE_VERSION)

    def bin(self, name):
        return os.path.join(self.venv, "bin", name)

    def require(self, *paths):
        """Plugin files (relative to the collection) this scenario needs."""
        for path in paths:
            if not os.path.isfile(os.path.join(self.collection, path)):
                raise BenchError("the built collection has no %s" % path)


class Community:
    """The `ansible` package (it ships community.libvirt), with libvirt-python and lxml, in a venv of its own:
    VIRTOPS_CACHE_DIR/bench-venv-ansible-<version>, made on the first run (about a minute)."""

    def __init__(self, version):
        self.version = version
        self.venv = os.path.join(cache_dir(), "bench-venv-ansible-%s" % version)
        self.python = os.path.join(self.venv, "bin", "python")
        if not os.path.exists(os.path.join(self.venv, ".complete")):
            self._create()
        self.collection = python_value(
            self.python, "import ansible_collections.community.libvirt as m; print(list(m.__path__)[0])")
        with open(os.path.join(self.collection, "MANIFEST.json")) as f:
            self.cl_version = json.load(f)["collection_info"]["version"]
        self.core_version = python_value(self.python, CORE_VERSION)

    def _create(self):
        log("creating %s (ansible==%s, libvirt-python, lxml; about a minute)" % (self.venv, self.version))
        shutil.rmtree(self.venv, ignore_errors=True)
        os.makedirs(cache_dir(), exist_ok=True)
        logfile = os.path.join(cache_dir(), "bench-pip.log")
        run_logged(["python3", "-m", "venv", self.venv], logfile)
        run_logged([os.path.join(self.venv, "bin", "pip"), "install", "-q", "ansible==%s" % self.version,
                    "libvirt-python", "lxml"], logfile)
        with open(os.path.join(self.venv, ".complete"), "w"):
            pass

    def bin(self, name):
        return os.path.join(self.venv, "bin", name)

    def describe(self):
        return "ansible %s (ansible-core %s, community.libvirt %s)" % (self.version, self.core_version, self.cl_version)

    def require(self, *paths):
        for path in paths:
            if not os.path.isfile(os.path.join(self.collection, path)):
                raise BenchError("community.libvirt %s (ansible %s) has no %s; see benchmarks/README.md"
                                 % (self.cl_version, self.version, path))
