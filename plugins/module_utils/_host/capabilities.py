# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a hypervisor offers a VM: capabilities XML, CPU, guest arches and machine types, memory,
the limits of one VM, whether KVM is usable.  Read only; used by ``host_info``, ``vm``,
``vm_import`` and ``migrate``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors


def version_string(number):
    """libvirt's packed version number (9000000) -> '9.0.0'."""
    number = int(number or 0)
    return "%d.%d.%d" % (number // 1000000, (number // 1000) % 1000, number % 1000)


def host_capabilities(conn):
    with libvirt_errors("reading host capabilities"):
        return _xml.parse(conn.getCapabilities(), "host capabilities")


def cpu_facts(caps, node_info):
    """CPU facts from capabilities XML and ``getInfo()``."""
    cpu = caps.find("host/cpu")
    topo = cpu.find("topology") if cpu is not None else None
    model_mhz = node_info[3]
    facts = dict(
        arch=_xml.find_text(caps, "host/cpu/arch"),
        model=_xml.find_text(caps, "host/cpu/model") or node_info[0],
        vendor=_xml.find_text(caps, "host/cpu/vendor"),
        count=int(node_info[2]),
        mhz=int(model_mhz),
        numa_nodes=int(node_info[4]),
        sockets=int(topo.get("sockets")) if topo is not None else int(node_info[5]),
        cores=int(topo.get("cores")) if topo is not None else int(node_info[6]),
        threads=int(topo.get("threads")) if topo is not None else int(node_info[7]),
        features=sorted(f.get("name") for f in caps.findall("host/cpu/feature") if f.get("name")),
    )
    return facts


def guest_facts(caps):
    """Virt types per guest arch: ``{'x86_64': ['kvm', 'qemu'], ...}`` plus machine types."""
    arches = {}
    machines = {}
    for guest in caps.findall("guest"):
        if _xml.find_text(guest, "os_type") != "hvm":
            continue
        arch = guest.find("arch")
        if arch is None:
            continue
        name = arch.get("name")
        types = arches.setdefault(name, [])
        for dom in arch.findall("domain"):
            if dom.get("type") not in types:
                types.append(dom.get("type"))
        machines.setdefault(name, sorted(set(m.text.strip() for m in arch.findall("machine") if m.text)))
    return arches, machines


def memory_facts(conn, node_info):
    """Total, free and available host memory in bytes.

    The kernel's own counters (``virsh nodememstats``) come first: ``getInfo()`` and
    ``getFreeMemory()`` add up NUMA cells, which under-reports memory on hosts whose memory is not
    all in the NUMA view (seen on a 24 GiB VM that libvirt's nodeinfo called 4.7 GiB).
    ``available`` adds the page cache and buffers the kernel can reclaim to ``free``.
    """
    try:
        stats = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)
    except libvirt.libvirtError:
        stats = {}
    if stats.get("total"):
        free = int(stats.get("free", 0)) * 1024
        reclaimable = (int(stats.get("buffers", 0)) + int(stats.get("cached", 0))) * 1024
        return dict(total=int(stats["total"]) * 1024, free=free, available=free + reclaimable)
    free = int(conn.getFreeMemory())
    return dict(total=int(node_info[1]) * 1024 * 1024, free=free, available=free)


def host_limits(conn):
    """The most one VM may have: ``cpus`` (the host's CPUs) and ``memory`` (the host's, in bytes)."""
    with libvirt_errors("reading host information"):
        info = conn.getInfo()
        return dict(cpus=int(info[2]), memory=memory_facts(conn, info)["total"])


def kvm_usable(conn, host_arch, arches):
    """True when libvirt offers a ``kvm`` domain type for the host's arch and can describe it."""
    if "kvm" not in arches.get(host_arch, []):
        return False
    try:
        conn.getDomainCapabilities(None, host_arch, None, "kvm", 0)
    except libvirt.libvirtError:
        return False
    return True
