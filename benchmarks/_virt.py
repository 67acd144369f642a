# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt objects a scenario makes for itself (through virsh), and removes again at the end."""

import fnmatch
import os
import subprocess

from ._util import BenchError, log, virsh, virsh_lines


class DirPool:
    """A dir pool of the benchmark's own: neither the pool nor its directory may exist before. remove() (registered
    on the scenario's ExitStack by create()) destroys and undefines it, deletes the files matching `patterns` in
    its directory, and the directory if it is then empty."""

    def __init__(self, uri, name, path, patterns):
        self.uri, self.name, self.path, self.patterns = uri, name, path, patterns

    def create(self, stack):
        if os.path.exists(self.path):
            raise BenchError("%s already exists; remove it or set another directory" % self.path)
        if virsh(self.uri, "pool-info", self.name, check=False) is not None:
            raise BenchError("pool %r already exists on %s" % (self.name, self.uri))
        os.mkdir(self.path, 0o755)
        stack.callback(self.remove)
        virsh(self.uri, "pool-define-as", self.name, "dir", "--target", self.path)
        virsh(self.uri, "pool-start", self.name)
        return self

    def remove(self):
        virsh(self.uri, "pool-destroy", self.name, check=False)
        virsh(self.uri, "pool-undefine", self.name, check=False)
        if os.path.isdir(self.path):
            for f in os.listdir(self.path):
                if any(fnmatch.fnmatchcase(f, p) for p in self.patterns):
                    os.unlink(os.path.join(self.path, f))
            try:
                os.rmdir(self.path)
            except OSError:
                log("warning: %s is not empty, left in place" % self.path)

    def file(self, name):
        return os.path.join(self.path, name)

    def refresh(self):
        virsh(self.uri, "pool-refresh", self.name)

    def volumes(self):
        return [line.split()[0] for line in virsh_lines(self.uri, "vol-list", self.name)]

    def delete_files(self, pattern):
        """Delete the files matching pattern (not through libvirt), then refresh the pool."""
        for f in os.listdir(self.path):
            if fnmatch.fnmatchcase(f, pattern):
                os.unlink(os.path.join(self.path, f))
        self.refresh()


def domains(uri, match, state_running=False):
    """Names of the domains on uri for which match(name) is true (all, or only the running ones)."""
    args = ["list", "--name", "--state-running"] if state_running else ["list", "--all", "--name"]
    return [d for d in virsh_lines(uri, *args) if match(d)]


def remove_domains(uri, names):
    """Destroy (in parallel: QEMU takes 1-2 s to exit) and undefine the domains."""
    procs = [subprocess.Popen(["virsh", "-q", "-c", uri, "destroy", n], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for n in names]
    for p in procs:
        p.wait()
    for n in names:
        virsh(uri, "undefine", n, check=False)
