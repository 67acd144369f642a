# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a placement decision needs to know about one hypervisor (``host_info``).

One libvirt call per domain (``info()``: memory and vCPUs; persistence comes from one list call), a
refresh and a few calls per pool, a few per network.  ``statistics_only`` skips all of them and the
capabilities: the host's CPU and memory use (:mod:`.stats`), its name and URI, for sampling every
minute (``playbooks/stats.yml``) without rescanning every pool each time.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.virtops.libvirt.plugins.module_utils._core import xml as _xml
from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt, libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag
from ansible_collections.virtops.libvirt.plugins.module_utils._core.timeouts import timeout_seconds
from ansible_collections.virtops.libvirt.plugins.module_utils._host import stats as _stats
from ansible_collections.virtops.libvirt.plugins.module_utils._host.capabilities import (
    cpu_facts,
    guest_facts,
    host_capabilities,
    kvm_usable,
    memory_facts,
    version_string,
)
from ansible_collections.virtops.libvirt.plugins.module_utils._host.facts import ACTIVE_STATES, DOMAIN_STATES, POOL_STATES

_PERSISTENT = flag("VIR_CONNECT_LIST_DOMAINS_PERSISTENT", 4)


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
    with libvirt_errors("listing VMs"):
        domains = conn.listAllDomains(0)
        persistent_ones = set(d.UUIDString() for d in conn.listAllDomains(_PERSISTENT))
    names = []
    for dom in domains:
        try:
            state_num, max_kib, cur_kib, vcpus, _cpu_time = dom.info()
            persistent = dom.UUIDString() in persistent_ones
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
    interval = timeout_seconds(ctx.params.get("interval"), "interval", 1)
    only = bool(ctx.params.get("statistics_only"))
    first = _stats.sample(conn) if ctx.params.get("statistics") or only else None
    if only:
        with libvirt_errors("reading host information"):
            host = dict(hostname=conn.getHostname(), uri=conn.getURI())
        host["statistics"] = _stats.host_statistics(conn, ctx.uri, first, interval)
        return dict(changed=False, host=host)
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
    if first is not None:
        host["statistics"] = _stats.host_statistics(conn, ctx.uri, first, interval)
    return dict(changed=False, host=host)
