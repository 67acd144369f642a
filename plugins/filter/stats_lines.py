# -*- coding: utf-8 -*-
# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: stats_lines
short_description: Lines of JSON or CSV from the statistics of vm_info and host_info, to append to a file
version_added: 0.1.0
author:
  - virtops.libvirt developers (@virtops)
description:
  - Turns RV(virtops.libvirt.vm_info#module:vms) (with O(virtops.libvirt.vm_info#module:statistics=true))
    and the RV(virtops.libvirt.host_info#module:host.statistics) of one hypervisor into lines a user can
    plot. One line is written for the hypervisor (C(kind=host)) and one per VM that has statistics
    (C(kind=vm)), with the rates of its disks and of its NICs summed.
  - The columns are C(time), C(kind), C(hypervisor), C(vm), C(cpu_percent), C(memory_bytes) (a VM's balloon
    size, the host's used memory), C(memory_rss_bytes), C(disk_read_bytes_per_second),
    C(disk_write_bytes_per_second), C(disk_read_ops_per_second), C(disk_write_ops_per_second),
    C(net_rx_bytes_per_second), C(net_tx_bytes_per_second) and C(load_1m) (the host's). A value that is not
    known is C(null) in JSON and empty in CSV.
options:
  _input:
    description: The C(vms) of a M(virtops.libvirt.vm_info) result with O(virtops.libvirt.vm_info#module:statistics=true).
    type: list
    elements: dict
    required: true
  host:
    description:
      - The C(host.statistics) of a M(virtops.libvirt.host_info) result with
        O(virtops.libvirt.host_info#module:statistics=true); omit it for VM lines only.
    type: dict
  hypervisor:
    description: The name of the hypervisor, written in each line.
    type: str
    required: true
  time:
    description: The time of the sample, written in each line (an ISO 8601 string, for example).
    type: str
    required: true
  format:
    description: V(json) for one JSON object per line, V(csv) for comma-separated values (RFC 4180 quoting).
    type: str
    choices: [json, csv]
    default: json
  header:
    description: With O(format=csv), start with the header line (for a new file).
    type: bool
    default: false
notes:
  - Pure Python on the controller; it does not connect to any hypervisor.
seealso:
  - module: virtops.libvirt.vm_info
  - module: virtops.libvirt.host_info
"""

EXAMPLES = r"""
- name: Lines of this hypervisor, to append to a file
  ansible.builtin.set_fact:
    lines: "{{ vms.vms | virtops.libvirt.stats_lines(host=host.host.statistics, hypervisor=inventory_hostname,
              time=now(utc=true).isoformat(), format='csv') }}"
"""

RETURN = r"""
_value:
  description: The lines, without line ends.
  type: list
  elements: str
  sample:
    - '{"time": "2026-12-07T18:00:00Z", "kind": "vm", "hypervisor": "kvm1", "vm": "web1", "cpu_percent": 12.5, "memory_bytes": 536870912}'
"""

import csv
import io
import json

from ansible.errors import AnsibleFilterError

COLUMNS = ("time", "kind", "hypervisor", "vm", "cpu_percent", "memory_bytes", "memory_rss_bytes",
           "disk_read_bytes_per_second", "disk_write_bytes_per_second", "disk_read_ops_per_second",
           "disk_write_ops_per_second", "net_rx_bytes_per_second", "net_tx_bytes_per_second", "load_1m")
_SUMS = (("disks", "read_bytes_per_second", "disk_read_bytes_per_second"),
         ("disks", "write_bytes_per_second", "disk_write_bytes_per_second"),
         ("disks", "read_ops_per_second", "disk_read_ops_per_second"),
         ("disks", "write_ops_per_second", "disk_write_ops_per_second"),
         ("interfaces", "rx_bytes_per_second", "net_rx_bytes_per_second"),
         ("interfaces", "tx_bytes_per_second", "net_tx_bytes_per_second"))


def _sum(values):
    known = [v for v in values if v is not None]
    return round(sum(known), 2) if known else None


def _rows(vms, host, hypervisor, time):
    rows = []
    if host is not None:
        load = host.get("load_average") or [None]
        rows.append(dict(time=time, kind="host", hypervisor=hypervisor, cpu_percent=host.get("cpu_percent"),
                         memory_bytes=(host.get("memory") or {}).get("used"), load_1m=load[0]))
    for vm in sorted(vms, key=lambda v: v.get("name") or ""):
        stats = vm.get("statistics")
        if not stats:
            continue
        memory = stats.get("memory") or {}
        row = dict(time=time, kind="vm", hypervisor=hypervisor, vm=vm.get("name"), cpu_percent=stats.get("cpu_percent"),
                   memory_bytes=memory.get("current"), memory_rss_bytes=memory.get("rss"))
        for group, key, column in _SUMS:
            row[column] = _sum(dev.get(key) for dev in stats.get(group) or [])
        rows.append(row)
    return [dict((c, row.get(c)) for c in COLUMNS) for row in rows]


def stats_lines(vms, hypervisor=None, time=None, host=None, format="json", header=False):  # pylint: disable=redefined-builtin
    """``vms | virtops.libvirt.stats_lines(hypervisor=..., time=..., host=..., format=json|csv, header=false)``"""
    if not isinstance(vms, list) or (host is not None and not isinstance(host, dict)):
        raise AnsibleFilterError("stats_lines: the input is the vms list of vm_info, host the host.statistics of host_info")
    if not hypervisor or not time:
        raise AnsibleFilterError("stats_lines: give hypervisor and time")
    if format not in ("json", "csv"):
        raise AnsibleFilterError("stats_lines: format is json or csv, not %r" % (format,))
    rows = _rows(vms, host, hypervisor, time)
    if format == "json":
        return [json.dumps(row, sort_keys=False) for row in rows]
    out = []
    for values in ([list(COLUMNS)] if header else []) + [[row[c] for c in COLUMNS] for row in rows]:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(["" if v is None else v for v in values])
        out.append(buf.getvalue())
    return out


class FilterModule(object):
    def filters(self):
        return {"stats_lines": stats_lines}
