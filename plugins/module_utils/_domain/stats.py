# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``vm_info`` with ``statistics``: two samples of ``getAllDomainStats`` (one call each for every VM of
the host), ``interval`` seconds apart; CPU percent and rates are the differences over the wall time.

What the bulk call costs is libvirt asking every QEMU process over its monitor, one after the other:
so it asks for the groups the result needs only (state, CPU time, balloon, NICs, disks; not the vCPU
group, whose monitor queries give per-vCPU times nobody reads here: the vCPU count comes from the
running VM's definition), for running VMs only (``..._STATS_ACTIVE``), and with ``..._STATS_NOWAIT``:
a VM whose monitor is busy with another job (a migration, a backup, a hung QEMU) is reported at once
with what libvirt knows without it (state, CPU time, NIC counters), so one such VM does not hold up
the sample of all the others; its disk and memory numbers are then null for that run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.virtops.libvirt.plugins.module_utils._core.connection import libvirt_errors
from ansible_collections.virtops.libvirt.plugins.module_utils._core.flags import flag

#: state, CPU total, balloon, interface and block statistics (VIR_DOMAIN_STATS_*; not VCPU, 8)
GROUPS = (flag("VIR_DOMAIN_STATS_STATE", 1) | flag("VIR_DOMAIN_STATS_CPU_TOTAL", 2) | flag("VIR_DOMAIN_STATS_BALLOON", 4)
          | flag("VIR_DOMAIN_STATS_INTERFACE", 16) | flag("VIR_DOMAIN_STATS_BLOCK", 32))
#: running VMs only, and none waits for a busy monitor
FLAGS = flag("VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE", 1) | flag("VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT", 1 << 29)
DISK = (("rd.bytes", "read_bytes"), ("wr.bytes", "write_bytes"), ("rd.reqs", "read_ops"), ("wr.reqs", "write_ops"))
NIC = (("rx.bytes", "rx_bytes"), ("tx.bytes", "tx_bytes"), ("rx.pkts", "rx_packets"), ("tx.pkts", "tx_packets"),
       ("rx.errs", "rx_errors"), ("tx.errs", "tx_errors"), ("rx.drop", "rx_drops"), ("tx.drop", "tx_drops"))
MEMORY = ("current", "maximum", "available", "usable", "unused", "rss")


def sample(conn):
    """``(monotonic time, {uuid: stats record})`` of every VM of the host, in one libvirt call."""
    with libvirt_errors("reading the statistics of the VMs"):
        return time.monotonic(), dict((dom.UUIDString(), rec) for dom, rec in conn.getAllDomainStats(GROUPS, FLAGS))


def _rate(new, old, seconds):
    return None if new is None or old is None or seconds <= 0 or new < old else round((new - old) / seconds, 2)


def _devices(new, old, group, keys, seconds):
    """Per disk (``block``) or NIC (``net``): counters and their rates, matched by name between samples."""
    before = dict((old.get("%s.%d.name" % (group, i)), i) for i in range(old.get(group + ".count", 0)))
    out = []
    for i in range(new.get(group + ".count", 0)):
        item = dict(target=new.get("%s.%d.name" % (group, i)))
        j = before.get(item["target"])
        for key, word in keys:
            value = new.get("%s.%d.%s" % (group, i, key))
            item[word] = value
            item[word + "_per_second"] = _rate(value, old.get("%s.%d.%s" % (group, j, key)) if j is not None else None, seconds)
        out.append(item)
    return out


def statistics(first, second, uuid, vcpus):
    """The statistics of VM ``uuid`` (``vcpus`` of its running definition) from two :func:`sample`
    results; None when it does not run."""
    new, old = second[1].get(uuid), first[1].get(uuid) or {}
    if not new or new.get("state.state") not in (1, 2, 3, 7):  # running, blocked, paused, pmsuspended
        return None
    seconds, cpu = second[0] - first[0], new.get("cpu.time")
    used = _rate(cpu, old.get("cpu.time"), seconds)
    return dict(
        interval=round(seconds, 3), cpu_time_ns=cpu, vcpus=vcpus,
        cpu_percent=round(used / 1e7 / vcpus, 2) if used is not None and vcpus else None,
        memory=dict((k, new["balloon." + k] * 1024 if new.get("balloon." + k) is not None else None) for k in MEMORY),
        disks=_devices(new, old, "block", DISK, seconds), interfaces=_devices(new, old, "net", NIC, seconds))


def add_statistics(conn, vms, first, interval, vcpus):
    """The second sample, ``interval`` seconds after ``first``; ``statistics`` into each VM.  ``vcpus``:
    ``{uuid: vCPUs}`` of the running VMs (their live definitions)."""
    time.sleep(max(0.0, interval - (time.monotonic() - first[0])))
    second = sample(conn)
    for vm in vms:
        vm["statistics"] = statistics(first, second, vm["uuid"], vcpus.get(vm["uuid"]))
