# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a placement decision needs to know about one hypervisor (``host_info``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors

# virDomainState numbers -> names (stable libvirt ABI)
DOMAIN_STATES = {
    0: "nostate",
    1: "running",
    2: "blocked",
    3: "paused",
    4: "shutdown",
    5: "shutoff",
    6: "crashed",
    7: "pmsuspended",
}
#: libvirt's state names in the words of ``vm``'s ``state`` option
_STATE_WORDS = {"shutoff": "stopped", "blocked": "running"}


def state_word(libvirt_state):
    """libvirt's state name (``shutoff``) in the ``vm`` module's words (``stopped``)."""
    return _STATE_WORDS.get(libvirt_state, libvirt_state)


def run_state(dom):
    """``running``, ``paused``, ``stopped`` or libvirt's name for the rarer states."""
    return state_word(DOMAIN_STATES.get(dom.state()[0], "nostate"))


#: states in which a domain holds memory and vCPUs on the host
ACTIVE_STATES = ("running", "blocked", "paused", "shutdown", "pmsuspended", "crashed")

POOL_STATES = {0: "inactive", 1: "building", 2: "running", 3: "degraded", 4: "inaccessible"}


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


def domain_facts(conn):
    counts = dict((name, 0) for name in DOMAIN_STATES.values())
    totals = dict(
        defined=0,
        active=0,
        persistent=0,
        transient=0,
        vcpus_defined=0,
        vcpus_active=0,
        memory_defined=0,
        memory_active=0,
    )
    with libvirt_errors("listing domains"):
        domains = conn.listAllDomains(0)
    names = []
    for dom in domains:
        try:
            state_num, max_kib, cur_kib, vcpus, _cpu_time = dom.info()
            persistent = bool(dom.isPersistent())
            name = dom.name()
        except libvirt.libvirtError:
            continue  # vanished while we looked
        state = DOMAIN_STATES.get(state_num, "nostate")
        counts[state] = counts.get(state, 0) + 1
        names.append(name)
        totals["defined"] += 1
        totals["persistent" if persistent else "transient"] += 1
        totals["vcpus_defined"] += vcpus
        totals["memory_defined"] += max_kib * 1024
        if state in ACTIVE_STATES:
            totals["active"] += 1
            totals["vcpus_active"] += vcpus
            totals["memory_active"] += cur_kib * 1024
    totals["by_state"] = counts
    totals["names"] = sorted(names)
    return totals


def pool_facts(conn):
    pools = []
    with libvirt_errors("listing storage pools"):
        all_pools = conn.listAllStoragePools(0)
    for pool in all_pools:
        try:
            name = pool.name()
            active = bool(pool.isActive())
            if active:
                try:
                    pool.refresh(0)
                except libvirt.libvirtError:
                    pass  # a refresh can race with another job; the info below is still valid
            state, capacity, allocation, available = pool.info()
            doc = _xml.parse(pool.XMLDesc(0), "pool XML")
            autostart = bool(pool.autostart())
            volumes = pool.numOfVolumes() if active else None
        except libvirt.libvirtError:
            continue
        pools.append(
            dict(
                name=name,
                type=doc.get("type"),
                active=active,
                state=POOL_STATES.get(state, "unknown"),
                autostart=autostart,
                path=_xml.find_text(doc, "target/path"),
                capacity=capacity,
                allocation=allocation,
                available=available,
                volumes=volumes,
            )
        )
    return sorted(pools, key=lambda p: p["name"])


def network_facts(conn):
    networks = []
    with libvirt_errors("listing networks"):
        all_nets = conn.listAllNetworks(0)
    for net in all_nets:
        try:
            name = net.name()
            active = bool(net.isActive())
            doc = _xml.parse(net.XMLDesc(0), "network XML")
            autostart = bool(net.autostart())
            persistent = bool(net.isPersistent())
        except libvirt.libvirtError:
            continue
        forward = doc.find("forward")
        networks.append(
            dict(
                name=name,
                active=active,
                autostart=autostart,
                persistent=persistent,
                bridge=_xml.find_attr(doc, "bridge", "name"),
                forward_mode=forward.get("mode", "nat") if forward is not None else "isolated",
            )
        )
    return sorted(networks, key=lambda n: n["name"])


def gather_host_info(ctx):
    """Everything ``host_info`` returns, as one dict (``changed`` is always False)."""
    conn = ctx.conn
    caps = host_capabilities(conn)
    with libvirt_errors("reading host information"):
        node_info = conn.getInfo()
        hostname = conn.getHostname()
        lib_version = conn.getLibVersion()
        hv_version = conn.getVersion()
        driver = conn.getType()
        memory = memory_facts(conn, node_info)
        uri = conn.getURI()
        host_uuid = _xml.find_text(caps, "host/uuid")

    cpu = cpu_facts(caps, node_info)
    arches, machines = guest_facts(caps)
    domains = domain_facts(conn)
    host = dict(
        hostname=hostname,
        uri=uri,
        uuid=host_uuid,
        driver=driver,
        libvirt_version=version_string(lib_version),
        hypervisor_version=version_string(hv_version),
        cpu=cpu,
        virt_types=arches.get(cpu["arch"], []),
        guest_arches=arches,
        machine_types=machines.get(cpu["arch"], []),
        kvm_usable=kvm_usable(conn, cpu["arch"], arches),
        memory=dict(
            total=memory["total"],
            free=memory["free"],
            available=memory["available"],
            allocated_defined=domains["memory_defined"],
            allocated_active=domains["memory_active"],
        ),
        vcpus=dict(
            host=cpu["count"],
            allocated_defined=domains["vcpus_defined"],
            allocated_active=domains["vcpus_active"],
            overcommit_active=round(domains["vcpus_active"] / float(cpu["count"] or 1), 3),
        ),
        domains=dict(
            total=domains["defined"],
            active=domains["active"],
            persistent=domains["persistent"],
            transient=domains["transient"],
            by_state=domains["by_state"],
            names=domains["names"],
        ),
        pools=pool_facts(conn),
        networks=network_facts(conn),
    )
    return dict(changed=False, host=host)
