# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where one statistics run of vm_info or host_info spends its time: the module's gather function, as its main()
calls it, under cProfile in this process, and every libvirt API call it made, counted and timed (run with the tools
venv's python and the built collection on PYTHONPATH, as helpers/stats_vms.py).

  stats_profile.py URI vm_info|host_info [OPTION=VALUE ...]   e.g. name_pattern='vbstat-*' addresses=false

statistics=true and interval=1 unless given; a VALUE of true/false/a number is converted. Prints the wall time, the
time asleep (the interval), the libvirt calls by total time (count, seconds, ms per call) and the 15 functions of the
collection with the most cumulative time.
"""

import cProfile
import pstats
import sys
import time

import libvirt
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.info import gather_vm_info
from ansible_collections.virtops.libvirt.plugins.module_utils._host.info import gather_host_info

GATHER = dict(vm_info=gather_vm_info, host_info=gather_host_info)
#: methods of the binding that are not calls to libvirt
_NOT_CALLS = ("__init__", "__del__", "c_pointer", "connect", "__enter__", "__exit__")


def _value(text):
    if text in ("true", "false"):
        return text == "true"
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return text


def _classes(path):
    """``line -> class name`` of the binding's source (virDomain.info and virStoragePool.info apart)."""
    owner, current = {}, ""
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if line.startswith("class "):
                current = line.split()[1].split("(")[0].rstrip(":")
            elif line and not line[0].isspace():
                current = ""
            owner[number] = current
    return owner


def libvirt_calls(stats):
    """``[(Class.name, count, seconds)]`` of the binding's API methods, most time first."""
    rows, owners = [], {}
    for (path, line, name), (_cc, count, _tt, cum, _callers) in stats.stats.items():
        if path.endswith("libvirt.py") and name not in _NOT_CALLS and not name.startswith(("_", "<")):
            if path not in owners:
                owners[path] = _classes(path)
            rows.append(("%s.%s" % (owners[path].get(line) or "libvirt", name), count, cum))
    return sorted(rows, key=lambda r: -r[2])


def main(argv):
    libvirt.registerErrorHandler(lambda *args: None, None)
    uri, which = argv[0], argv[1]
    params = dict(uri=uri, statistics=True, interval=1)
    params.update((k, _value(v)) for k, v in (a.split("=", 1) for a in argv[2:]))
    conn = libvirt.open(uri)
    ctx = Context(conn=conn, params=params, uri=uri)
    profile = cProfile.Profile()
    t0 = time.monotonic()
    profile.enable()
    result = GATHER[which](ctx)
    profile.disable()
    wall = time.monotonic() - t0
    stats = pstats.Stats(profile)
    slept = sum(v[3] for k, v in stats.stats.items() if k[2] == "<built-in method time.sleep>")
    vms = len(result.get("vms") or [])
    print("%s: %.3f s wall, %.3f s asleep (interval), %.3f s working; %d VMs returned" % (which, wall, slept, wall - slept, vms))
    calls = libvirt_calls(stats)
    print("libvirt calls: %d in %.3f s" % (sum(c for _n, c, _s in calls), sum(s for _n, _c, s in calls)))
    for name, count, seconds in calls:
        print("  %-32s %6d  %8.3f s  %7.2f ms/call" % (name, count, seconds, 1000.0 * seconds / count))
    print("the collection's functions by cumulative time:")
    rows = [(k, v) for k, v in stats.stats.items() if "virtops/libvirt/plugins" in k[0]]
    for (path, line, name), (_cc, count, _tt, cum, _callers) in sorted(rows, key=lambda r: -r[1][3])[:15]:
        print("  %-60s %6d  %8.3f s" % ("%s:%d %s" % (path.split("plugins/")[-1], line, name), count, cum))
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1:])
