# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``host_info`` with ``statistics``: the hypervisor's CPU use over ``interval`` seconds (two samples of
``virNodeGetCPUStats``), its memory use (``virNodeGetMemoryStats``) and its load average.

libvirt has no call for the load average: it is read from ``/proc/loadavg`` when the URI is local (the
module runs on the hypervisor; a libvirtd in another network or mount namespace shares the kernel, so
the value is the hypervisor's), and is None for a remote URI (run the module on the hypervisor instead).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors, uri_is_local

ALL_CPUS = ALL_CELLS = -1  # VIR_NODE_CPU_STATS_ALL_CPUS, VIR_NODE_MEMORY_STATS_ALL_CELLS


def sample(conn):
    """``(monotonic time, {kernel, user, idle, iowait: ns})`` of all host CPUs together."""
    with libvirt_errors("reading the CPU statistics of the host"):
        return time.monotonic(), conn.getCPUStats(ALL_CPUS, 0)


def cpu_use(first, second):
    """Percent of the host's CPU time that was busy (and waiting for I/O) between two samples."""
    delta = dict((k, second[1][k] - first[1].get(k, 0)) for k in second[1])
    total = sum(delta.values())
    if total <= 0:
        return dict(cpu_percent=None, iowait_percent=None)
    return dict(cpu_percent=round(100.0 * (total - delta.get("idle", 0) - delta.get("iowait", 0)) / total, 2),
                iowait_percent=round(100.0 * delta.get("iowait", 0) / total, 2))


def load_average(uri, path="/proc/loadavg"):
    """``[1 min, 5 min, 15 min]`` of the hypervisor, or None when the URI is not local (or no such file)."""
    if not uri_is_local(uri):
        return None
    try:
        with open(path) as f:
            return [float(v) for v in f.read().split()[:3]]
    except (IOError, OSError, ValueError):
        return None


def memory_use(conn):
    """Total, free, buffers, cached and used memory of the host in bytes (used: neither free nor cache);
    None when the driver does not tell (libvirt's test driver)."""
    try:
        kib = conn.getMemoryStats(ALL_CELLS, 0)
    except libvirt.libvirtError:
        return None
    out = dict((k, kib[k] * 1024) for k in ("total", "free", "buffers", "cached") if k in kib)
    if "total" in out and "free" in out:
        out["used"] = out["total"] - out["free"] - out.get("buffers", 0) - out.get("cached", 0)
        out["used_percent"] = round(100.0 * out["used"] / out["total"], 2) if out["total"] else None
    return out


def host_statistics(conn, uri, first, interval):
    """The ``statistics`` of ``host_info``: the second CPU sample ``interval`` seconds after ``first``."""
    time.sleep(max(0.0, interval - (time.monotonic() - first[0])))
    second = sample(conn)
    out = dict(interval=round(second[0] - first[0], 3), load_average=load_average(uri), memory=memory_use(conn))
    out.update(cpu_use(first, second))
    return out
