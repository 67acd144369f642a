# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The stats_lines filter: vm_info/host_info statistics as JSON lines or CSV (playbooks/stats.yml)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.virtops.libvirt.plugins.filter.stats_lines import COLUMNS, stats_lines

HOST = dict(interval=1.0, cpu_percent=37.5, iowait_percent=0.5, load_average=[0.5, 0.6, 0.7],
            memory=dict(total=100, free=20, buffers=5, cached=25, used=50, used_percent=50.0))
VMS = [
    dict(name="web,2", statistics=dict(
        cpu_percent=12.5, memory=dict(current=512, rss=400),
        disks=[dict(target="vda", read_bytes_per_second=1.0, write_bytes_per_second=100.0, read_ops_per_second=1.0,
                    write_ops_per_second=2.0),
               dict(target="sda", read_bytes_per_second=None, write_bytes_per_second=None, read_ops_per_second=None,
                    write_ops_per_second=None),
               dict(target="vdb", read_bytes_per_second=2.0, write_bytes_per_second=50.5, read_ops_per_second=1.0,
                    write_ops_per_second=1.0)],
        interfaces=[dict(target="vnet0", rx_bytes_per_second=10.0, tx_bytes_per_second=5.0)])),
    dict(name="db1", statistics=None),  # stopped
    dict(name="app1", statistics=dict(cpu_percent=None, memory=dict(current=256), disks=[], interfaces=[])),
]


def test_json_lines_one_per_vm_with_statistics_and_one_for_the_host():
    lines = stats_lines(VMS, hypervisor="kvm1", time="2026-12-07T18:00:00Z", host=HOST)
    rows = [json.loads(line) for line in lines]
    assert [(r["kind"], r["vm"]) for r in rows] == [("host", None), ("vm", "app1"), ("vm", "web,2")]
    assert list(rows[0]) == list(COLUMNS)
    assert rows[0]["cpu_percent"] == 37.5 and rows[0]["memory_bytes"] == 50 and rows[0]["load_1m"] == 0.5
    web = rows[2]
    assert (web["cpu_percent"], web["memory_bytes"], web["memory_rss_bytes"]) == (12.5, 512, 400)
    assert (web["disk_read_bytes_per_second"], web["disk_write_bytes_per_second"]) == (3.0, 150.5)
    assert (web["disk_read_ops_per_second"], web["disk_write_ops_per_second"]) == (2.0, 3.0)
    assert (web["net_rx_bytes_per_second"], web["net_tx_bytes_per_second"]) == (10.0, 5.0)
    assert rows[1]["disk_write_bytes_per_second"] is None and rows[1]["cpu_percent"] is None
    assert all(r["time"] == "2026-12-07T18:00:00Z" and r["hypervisor"] == "kvm1" for r in rows)


def test_csv_with_header_quotes_and_empty_unknowns():
    lines = stats_lines(VMS, hypervisor="kvm1", time="t", host=dict(HOST, load_average=None, memory=None),
                        format="csv", header=True)
    rows = list(csv.reader(lines))
    assert rows[0] == list(COLUMNS)
    assert rows[1][:6] == ["t", "host", "kvm1", "", "37.5", ""] and rows[1][-1] == ""
    assert rows[3][3] == "web,2" and len(rows) == 4
    assert stats_lines([], hypervisor="-", time="-", format="csv", header=True) == [",".join(COLUMNS)]
    assert stats_lines(VMS[:1], hypervisor="kvm1", time="t", format="csv")[0].startswith('t,vm,kvm1,"web,2",12.5,')


@pytest.mark.parametrize("vms, kwargs, fragment", [
    ("not a list", dict(hypervisor="h", time="t"), "the input is the vms list"),
    ([], dict(hypervisor="h", time="t", host=[1]), "the input is the vms list"),
    ([], dict(time="t"), "give hypervisor and time"),
    ([], dict(hypervisor="h", time="t", format="xml"), "format is json or csv"),
])
def test_bad_input(vms, kwargs, fragment):
    with pytest.raises(AnsibleFilterError, match=fragment):
        stats_lines(vms, **kwargs)
