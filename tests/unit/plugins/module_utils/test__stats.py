# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run-time statistics of ``vm_info`` (``_domain/stats.py``) and ``host_info`` (``_host/stats.py``).

The arithmetic is tested on records shaped as libvirt's ``getAllDomainStats`` returns them (the keys
``virsh domstats`` prints); the bulk sampling runs against the test driver, whose records have the
state group only and whose host has CPU counters but no memory statistics.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._core.errors import InvalidInputError
from ansible_collections.virtops.libvirt.plugins.module_utils._core.runner import Context
from ansible_collections.virtops.libvirt.plugins.module_utils._domain import stats as _stats
from ansible_collections.virtops.libvirt.plugins.module_utils._domain.info import gather_vm_info
from ansible_collections.virtops.libvirt.plugins.module_utils._host import stats as _host_stats
from ansible_collections.virtops.libvirt.plugins.module_utils._host.info import gather_host_info

UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"


def record(cpu, rd, wr, rx, state=1, **extra):
    """A record of the groups vm_info asks for (no vCPU group: the count comes from the definition)."""
    rec = {
        "state.state": state, "cpu.time": cpu,
        "balloon.current": 524288, "balloon.maximum": 1048576, "balloon.rss": 400000,
        "block.count": 2, "block.0.name": "vda", "block.0.rd.bytes": rd, "block.0.wr.bytes": wr,
        "block.0.rd.reqs": rd // 512, "block.0.wr.reqs": wr // 4096, "block.1.name": "sda",
        "net.count": 1, "net.0.name": "vnet0", "net.0.rx.bytes": rx, "net.0.tx.bytes": rx // 2,
        "net.0.rx.pkts": rx // 100, "net.0.tx.pkts": rx // 200, "net.0.rx.errs": 0, "net.0.tx.errs": 0,
        "net.0.rx.drop": 0, "net.0.tx.drop": 0,
    }
    rec.update(extra)
    return rec


def test_cpu_percent_and_rates_over_the_measured_interval():
    first = (100.0, {UUID: record(10 ** 9, 1024, 8192, 1000)})
    second = (102.0, {UUID: record(10 ** 9 + 3 * 10 ** 9, 1024, 8192 + 4 * 2 ** 20, 3000)})
    stats = _stats.statistics(first, second, UUID, 2)
    # 3 s of CPU in 2 s of wall time on 2 vCPUs: 75 %
    assert (stats["interval"], stats["cpu_percent"], stats["vcpus"]) == (2.0, 75.0, 2)
    assert stats["memory"] == dict(current=512 * 2 ** 20, maximum=2 ** 30, available=None, usable=None, unused=None,
                                   rss=400000 * 1024)
    vda, sda = stats["disks"]
    assert vda["target"] == "vda" and vda["write_bytes"] == 8192 + 4 * 2 ** 20
    assert vda["write_bytes_per_second"] == 2 * 2 ** 20 and vda["read_bytes_per_second"] == 0
    assert vda["write_ops_per_second"] == 512.0
    assert sda["target"] == "sda" and sda["read_bytes"] is None and sda["read_bytes_per_second"] is None
    nic = stats["interfaces"][0]
    assert (nic["target"], nic["rx_bytes"], nic["rx_bytes_per_second"], nic["tx_bytes_per_second"]) == ("vnet0", 3000, 1000.0, 500.0)
    assert (nic["rx_packets_per_second"], nic["rx_errors"]) == (10.0, 0)


def test_devices_are_matched_by_name_between_samples():
    """A disk plugged in between the samples has no rate; the others keep theirs, whatever the index."""
    old = record(0, 0, 0, 0)
    new = record(10 ** 9, 0, 1000, 0, **{"block.count": 3, "block.0.name": "vdb", "block.0.wr.bytes": 50,
                                         "block.2.name": "vda", "block.2.wr.bytes": 1000})
    disks = _stats.statistics((0.0, {UUID: old}), (1.0, {UUID: new}), UUID, 1)["disks"]
    assert [(d["target"], d["write_bytes_per_second"]) for d in disks] == [("vdb", None), ("sda", None), ("vda", 1000.0)]


@pytest.mark.parametrize("first, second, vcpus, percent", [
    ({}, {UUID: record(5, 0, 0, 0)}, 1, None),                        # started between the samples
    ({UUID: record(9, 0, 0, 0)}, {UUID: record(5, 0, 0, 0)}, 1, None),  # restarted: counters went back
    ({UUID: record(0, 0, 0, 0)}, {UUID: record(10 ** 9, 0, 0, 0)}, None, None),  # vCPUs unknown
    ({UUID: record(0, 0, 0, 0)}, {UUID: record(10 ** 9, 0, 0, 0)}, 4, 25.0),
])
def test_no_rate_without_two_comparable_samples(first, second, vcpus, percent):
    assert _stats.statistics((0.0, first), (1.0, second), UUID, vcpus)["cpu_percent"] == percent


def test_a_busy_vm_comes_without_the_monitor_groups():
    """NOWAIT: a VM whose monitor is busy has state, CPU and NIC counters only; the rest is null, no error."""
    busy = dict((k, v) for k, v in record(10 ** 9, 0, 0, 100).items() if not k.startswith(("block.", "balloon.")))
    stats = _stats.statistics((0.0, {UUID: record(0, 0, 0, 0)}), (1.0, {UUID: busy}), UUID, 1)
    assert stats["cpu_percent"] == 100.0 and stats["disks"] == [] and stats["memory"]["current"] is None
    assert stats["interfaces"][0]["rx_bytes_per_second"] == 100.0


@pytest.mark.parametrize("state", [5, 4, 6])  # shut off, shutting down, crashed
def test_a_vm_that_does_not_run_has_no_statistics(state):
    assert _stats.statistics((0.0, {}), (1.0, {UUID: record(0, 0, 0, 0, state=state)}), UUID, 1) is None
    assert _stats.statistics((0.0, {}), (1.0, {}), UUID, 1) is None


class _CountingConn(object):
    def __init__(self, conn):
        self._conn, self.calls = conn, []

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def getAllDomainStats(self, stats, flags):
        self.calls.append((stats, flags))
        return self._conn.getAllDomainStats(stats, flags)


def test_vm_info_samples_all_vms_twice_in_bulk(test_conn):
    conn = _CountingConn(test_conn)
    ctx = Context(conn=conn, params=dict(statistics=True, interval=0.2, addresses=False), uri="test:///default")
    result = gather_vm_info(ctx)
    assert conn.calls == [(_stats.GROUPS, _stats.FLAGS)] * 2
    # no vCPU group (monitor queries for per-vCPU times); running VMs only; nobody waits for a busy monitor
    assert _stats.GROUPS == 1 | 2 | 4 | 16 | 32 and _stats.FLAGS == 1 | 1 << 29
    test_vm = [vm for vm in result["vms"] if vm["name"] == "test"][0]
    # the test driver reports the state group only
    assert test_vm["statistics"]["interval"] >= 0.2 and test_vm["statistics"]["cpu_percent"] is None
    assert test_vm["statistics"]["vcpus"] == test_vm["vcpus"]
    assert test_vm["statistics"]["disks"] == [] and test_vm["statistics"]["memory"]["current"] is None
    without = gather_vm_info(Context(conn=conn, params=dict(addresses=False), uri="test:///default"))
    assert "statistics" not in without["vms"][0] and len(conn.calls) == 2


@pytest.mark.parametrize("interval", [0, -1, "soon"])
def test_interval_must_be_positive(test_conn, interval):
    with pytest.raises(InvalidInputError, match="interval: must be a positive number of seconds"):
        gather_vm_info(Context(conn=test_conn, params=dict(statistics=True, interval=interval), uri="test:///default"))


def test_host_cpu_use():
    first = (0.0, dict(kernel=100, user=300, idle=1000, iowait=0))
    second = (1.0, dict(kernel=200, user=500, idle=1600, iowait=100))
    assert _host_stats.cpu_use(first, second) == dict(cpu_percent=30.0, iowait_percent=10.0)
    assert _host_stats.cpu_use(first, first) == dict(cpu_percent=None, iowait_percent=None)


def test_host_load_average(tmp_path):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text(u"0.52 0.61 0.70 2/345 6789\n")
    assert _host_stats.load_average("qemu:///system", str(loadavg)) == [0.52, 0.61, 0.7]
    assert _host_stats.load_average("qemu+ssh://root@kvm1/system", str(loadavg)) is None
    assert _host_stats.load_average("qemu:///system", str(tmp_path / "missing")) is None


def test_host_info_statistics_against_the_test_driver(test_conn):
    host = gather_host_info(Context(conn=test_conn, params=dict(statistics=True, interval=0.1), uri="test:///default"))["host"]
    stats = host["statistics"]
    assert stats["interval"] >= 0.1 and stats["memory"] is None
    # the test driver's counters do not move
    assert stats["cpu_percent"] is None
    assert "statistics" not in gather_host_info(Context(conn=test_conn, params={}, uri="test:///default"))["host"]


class _Recorder(object):
    """A connection (or an object it returned) that records the libvirt methods called through it."""

    def __init__(self, obj, calls):
        self._obj, self._calls = obj, calls

    def __getattr__(self, name):
        attr = getattr(self._obj, name)
        if not callable(attr):
            return attr

        def call(*args):
            self._calls.append("%s.%s" % (type(self._obj).__name__, name))
            result = attr(*args)
            if isinstance(result, list):
                return [_Recorder(r, self._calls) if hasattr(r, "_o") else r for r in result]
            return result

        return call


def test_host_info_statistics_only_reads_no_domain_pool_or_network(test_conn):
    calls = []
    result = gather_host_info(Context(conn=_Recorder(test_conn, calls), params=dict(statistics_only=True, interval=0.1),
                                      uri="test:///default"))
    assert sorted(result["host"]) == ["hostname", "statistics", "uri"]
    assert result["host"]["statistics"]["interval"] >= 0.1
    assert sorted(set(calls)) == ["virConnect.getCPUStats", "virConnect.getHostname", "virConnect.getMemoryStats",
                                  "virConnect.getURI"]


def test_host_info_reads_each_domain_once(test_conn):
    """One info() per domain; persistence from one list call, not isPersistent() per domain."""
    transient = test_conn.createXML("<domain type='test'><name>u-stats-transient</name><memory>65536</memory>"
                                    "<os><type>hvm</type></os></domain>", 0)
    try:
        calls = []
        host = gather_host_info(Context(conn=_Recorder(test_conn, calls), params={}, uri="test:///default"))["host"]
        domains = test_conn.listAllDomains(0)
        persistent = len([d for d in domains if d.isPersistent()])
    finally:
        transient.destroy()
    assert host["domains"]["transient"] >= 1 and "u-stats-transient" in host["domains"]["names"]
    assert calls.count("virDomain.info") == len(domains) and "virDomain.isPersistent" not in calls
    assert not any(c.startswith("virDomain.") and c != "virDomain.info" and c != "virDomain.UUIDString"
                   and c != "virDomain.name" for c in calls), calls
    assert (host["domains"]["persistent"], host["domains"]["transient"]) == (persistent, len(domains) - persistent)
    assert "pools" in host and "networks" in host
